"""Datasets: the reference's format (a zip of PNGs + dataset.json), TFRecord shards, and a streaming
tf.data loader.

Writing: ``convert(source, dest, resolution, transform)`` reads a folder or zip of
images, or the built-in ``fashion-mnist`` source (Debian package
``dataset-fashion-mnist``, files in ``/usr/share/datasets/fashion-mnist/``), brings
every image to ``resolution`` and writes ``dest`` as NVIDIA's dataset_tool.py does:
``00000/img00000000.png`` ... and ``dataset.json`` with ``{"labels": [[name, label], ...]}``
(or ``null``). Images are brought to one channel count (``channels``, default the
majority), and the conversions are counted; 16-bit greyscale is scaled to 8 bits. Corrupt
files and decompression bombs are skipped and counted; sizes that differ without
``resolution`` are refused. Labels must be class indices in [0, MAX_CLASSES), checked when
written and when read.

``convert(..., format='tfrecord', shards=N)`` writes the same images and labels as a directory
of N TFRecord shards and dataset.json instead (the TensorFlow convention for multi-worker and
TPU input; read through tf.io.gfile, so any path it opens works).

Reading: ``DatasetReader.open(path)`` describes a zip, folder or TFRecord directory without
loading it; ``make_dataset`` streams it through tf.data (parallel read and decode, a per-epoch
order that depends only on (seed, epoch), x-flips, labels, per-replica sharding, prefetch), and
``iterate_batches`` streams it in stored order for statistics. Nothing holds the dataset in
memory or in the graph. ``load_images`` (everything in memory) is for small data and tests.
"""

import gzip
import io
import json
import pathlib
import shutil
import zipfile

import numpy as np

FASHION_MNIST_DIR = pathlib.Path('/usr/share/datasets/fashion-mnist')
TRANSFORMS = ('center-crop', 'center-crop-wide', 'pad', 'resize')


MAX_LABELS_BYTES = 256 << 20        # dataset.json larger than this is refused.


class DatasetError(ValueError):
    """The source cannot be converted (message says why and how many images were affected)."""


# ----------------------------------------------------------------------------
# Sources.

def _read_idx(path):
    """An IDX file (gzip or raw) -> numpy array (MNIST-style format)."""
    raw = pathlib.Path(path).read_bytes()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    if raw[:2] != b'\x00\x00' or raw[2] != 0x08:
        raise DatasetError(f'{path} is not an unsigned-byte IDX file')
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f'{path} is truncated')
    return data.reshape(shape)


def fashion_mnist(root=FASHION_MNIST_DIR, split='train'):
    """(images uint8 [N, 28, 28, 1], labels int [N]) from the Debian package's IDX files."""
    root = pathlib.Path(root)
    prefix = 'train' if split == 'train' else 't10k'
    images_path = next((p for p in (root / f'{prefix}-images-idx3-ubyte.gz', root / f'{prefix}-images-idx3-ubyte')
                        if p.is_file()), None)
    if images_path is None:
        raise DatasetError(f'Fashion-MNIST not found in {root}: install it with '
                           '`sudo apt-get install dataset-fashion-mnist`')
    labels_path = images_path.with_name(images_path.name.replace('images-idx3', 'labels-idx1'))
    return _read_idx(images_path)[..., np.newaxis], _read_idx(labels_path).astype(np.int64)


MAX_CLASSES = 65536     # Class labels must be integers in [0, MAX_CLASSES).


def check_label(label, where):
    """A class label as an int; DatasetError unless it is an integer in [0, MAX_CLASSES)."""
    ok = (isinstance(label, (int, float, np.integer, np.floating)) and not isinstance(label, (bool, np.bool_))
          and np.isfinite(label) and float(label) == int(label) and 0 <= label < MAX_CLASSES)
    if not ok:
        raise DatasetError(f'{where}: class labels must be integers in [0, {MAX_CLASSES}), got {label!r}')
    return int(label)


def _open_source(source):
    """(names, read(name) -> bytes, close()) of a folder or zip of images; DatasetError if it is neither."""
    from afgan_tf import image_reading
    try:
        return image_reading.open_images(source)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DatasetError(str(e)) from None


def _scan_channels(names, read):
    """{name: 1 or 3} from the image headers (no decoding); unreadable files are left out."""
    from PIL import Image
    from afgan_tf import image_reading
    counts = {}
    for name in names:
        try:
            with Image.open(io.BytesIO(read(name))) as img:
                counts[name] = image_reading.channel_count(img.mode)
        except Exception:  # noqa: BLE001 - corrupt files are counted by the decoding pass.
            continue
    return counts


def _iterate_source(source, max_images=None, channels=None, counts=None):
    """Yields (name, uint8 HWC image with ``channels`` channels, or None if unusable, label or None).

    ``channels`` None: the majority of the source's images (ties: 3). ``counts`` (a dict) receives
    ``corrupt``, ``too_large`` (decompression bombs: more pixels than PIL's limit), ``unreadable``
    (not a regular file, or a file or zip member over the size limit), ``converted`` (images
    brought to the other channel count), ``alpha`` (transparency composited on black), ``animated``
    (only the first frame used), and ``channels``.
    """
    from PIL import Image, UnidentifiedImageError
    from afgan_tf import image_reading, safe_files
    counts = {} if counts is None else counts
    if str(source) == 'fashion-mnist':
        images, labels = fashion_mnist()
        counts['channels'] = 1
        for i in range(len(images) if max_images is None else min(max_images, len(images))):
            image = images[i] if channels in (None, 1) else np.repeat(images[i], 3, axis=2)
            yield f'fashion-mnist/{i}', image, int(labels[i])
        return
    labels = _source_labels(source)
    names, read, close = _open_source(source)
    names = names[:max_images]
    try:
        if channels is None:
            found = list(_scan_channels(names, read).values())
            channels = 3 if found.count(3) >= found.count(1) else 1
        counts['channels'] = channels
        for name in names:
            try:
                data = read(name)
            except (safe_files.NotARegularFile, safe_files.TooLarge, OSError):
                counts['unreadable'] = counts.get('unreadable', 0) + 1
                yield name, None, None
                continue
            try:
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    if image_reading.channel_count(img.mode) != channels:
                        counts['converted'] = counts.get('converted', 0) + 1
                    if image_reading.has_alpha(img):
                        counts['alpha'] = counts.get('alpha', 0) + 1
                    if getattr(img, 'n_frames', 1) > 1:
                        counts['animated'] = counts.get('animated', 0) + 1
                    array = image_reading.to_array(img, channels)
            except Image.DecompressionBombError:
                counts['too_large'] = counts.get('too_large', 0) + 1
                yield name, None, None
                continue
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
                counts['corrupt'] = counts.get('corrupt', 0) + 1
                yield name, None, None
                continue
            yield name, array, labels.get(name)
    finally:
        close()


def _source_labels(source):
    """Labels from a source's own dataset.json, checked: {name: class}, or {} when it has none."""
    from afgan_tf import safe_files
    source = pathlib.Path(source)
    where = f'{source}/dataset.json'
    try:
        if source.is_dir():
            text = safe_files.read_regular_file(source / 'dataset.json', MAX_LABELS_BYTES).decode() \
                if (source / 'dataset.json').is_file() else None
        else:
            with zipfile.ZipFile(source) as z:
                text = safe_files.read_zip_member(z, 'dataset.json', MAX_LABELS_BYTES).decode() \
                    if 'dataset.json' in z.namelist() else None
    except safe_files.TooLarge as e:
        raise DatasetError(str(e)) from None
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
        return {}
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise DatasetError(f'{where} is not valid JSON: {e}') from None
    if not isinstance(data, dict) and data is not None:
        raise DatasetError(f'{where} must hold an object {{"labels": ...}}, got {type(data).__name__}')
    labels = (data or {}).get('labels')
    if labels is None:
        return {}
    if not isinstance(labels, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                               for p in labels):
        start = f' starting {labels[:1]!r}' if isinstance(labels, list) else ''
        raise DatasetError(f'{where}: "labels" must be a list of [file name, class] pairs or null, got '
                           f'{type(labels).__name__}{start}')
    return {name: None if label is None else check_label(label, f'{where} ({name})') for name, label in labels}


# ----------------------------------------------------------------------------
# Conversion.

ENLARGE_WARNING = 4      # Images enlarged more than this many times (per side) are counted and reported.


def fit_image(img, resolution, transform='center-crop', counts=None):
    """Brings an HWC uint8 image to resolution x resolution (the reference's transforms).

    A padded canvas with more pixels than Pillow's decompression-bomb limit raises
    ``Image.DecompressionBombError`` (a 40000x1 image would pad to 40000x40000). ``counts`` (a dict)
    receives ``enlarged``: images whose cropped or padded square was enlarged more than
    ENLARGE_WARNING-fold, and ``smallest``: the smallest such square's side.
    """
    from PIL import Image
    h, w, c = img.shape
    pil = Image.fromarray(img[:, :, 0] if c == 1 else img)
    if transform == 'center-crop':
        side = min(h, w)
        pil = pil.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    elif transform == 'center-crop-wide':
        ch = w // 2
        if ch > h:
            raise DatasetError(f'center-crop-wide needs width <= 2 x height, got {w}x{h}')
        side = w
        pil = pil.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
        pil = pil.resize((resolution, resolution // 2), Image.LANCZOS)
        canvas = Image.new(pil.mode, (resolution, resolution))
        canvas.paste(pil, (0, (resolution - resolution // 2) // 2))
        pil = canvas
    elif transform == 'pad':
        side = max(h, w)
        if Image.MAX_IMAGE_PIXELS and side * side > 2 * Image.MAX_IMAGE_PIXELS:
            raise Image.DecompressionBombError(f'padding {w}x{h} to {side}x{side} exceeds the pixel limit')
        canvas = Image.new(pil.mode, (side, side))
        canvas.paste(pil, ((side - w) // 2, (side - h) // 2))
        pil = canvas
    elif transform == 'resize':
        side = min(h, w)
    else:
        raise DatasetError(f'transform must be one of {TRANSFORMS}, got {transform!r}')
    if counts is not None and side * ENLARGE_WARNING < resolution:
        counts['enlarged'] = counts.get('enlarged', 0) + 1
        counts['smallest'] = min(counts.get('smallest', side), side)
    if pil.size != (resolution, resolution):
        pil = pil.resize((resolution, resolution), Image.LANCZOS)
    out = np.asarray(pil)
    return out[:, :, np.newaxis] if out.ndim == 2 else out


class _ZipWriter:
    """Writes NVIDIA's format: a zip of PNGs and dataset.json (to a temporary name, moved into place)."""

    def __init__(self, dest):
        if dest.suffix != '.zip':
            raise DatasetError(f'--dest must be a .zip file (or use --format tfrecord), got {dest}')
        self.dest, self.tmp = dest, dest.with_name(f'.{dest.name}.tmp')
        self.zip = zipfile.ZipFile(self.tmp, 'w', compression=zipfile.ZIP_STORED)

    def add(self, index, name, png, label):
        self.zip.writestr(name, png)

    def finish(self, labels_json, shape, num_images):
        self.zip.writestr('dataset.json', labels_json)
        self.zip.close()
        self.tmp.replace(self.dest)

    def abort(self):
        self.zip.close()
        self.tmp.unlink(missing_ok=True)


class _TFRecordWriter:
    """Writes a directory of TFRecord shards (Example: image = PNG bytes, index, label) and dataset.json
    with the shape, the labels and the fingerprint the same images have as a zip."""

    def __init__(self, dest, shards):
        import tensorflow as tf
        if not 1 <= shards <= 4096:
            raise DatasetError(f'--shards must be in [1, 4096], got {shards}')
        self.dest, self.tmp = dest, dest.with_name(f'.{dest.name}.tmp')
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.names = [f'shard-{i:05d}-of-{shards:05d}.tfrecord' for i in range(shards)]
        self.writers = [tf.io.TFRecordWriter(str(self.tmp / n)) for n in self.names]
        self.fingerprint, self.labels = _Fingerprint(), []
        self.entries = []

    def add(self, index, name, png, label):
        import zlib
        import tensorflow as tf
        feature = {'image': tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                   'index': tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
                   'label': tf.train.Feature(int64_list=tf.train.Int64List(value=[-1 if label is None else label]))}
        self.writers[index % len(self.writers)].write(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        self.entries.append((name, len(png), zlib.crc32(png)))
        self.labels.append(label)

    def finish(self, labels_json, shape, num_images):
        import zlib
        for writer in self.writers:
            writer.close()
        raw = labels_json.encode()
        for entry in sorted(self.entries + [('dataset.json', len(raw), zlib.crc32(raw))]):
            self.fingerprint.add(*entry)
        has_labels = all(label is not None for label in self.labels)
        meta = dict(format=TFRECORD_FORMAT, num_images=num_images, shape=list(shape), shards=self.names,
                    labels=self.labels if has_labels else None, fingerprint=self.fingerprint.hexdigest())
        (self.tmp / 'dataset.json').write_text(json.dumps(meta))
        if self.dest.exists():
            shutil.rmtree(self.dest)
        self.tmp.replace(self.dest)

    def abort(self):
        for writer in self.writers:
            writer.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


FORMATS = ('zip', 'tfrecord')


def convert(source, dest, resolution=None, transform='center-crop', max_images=None, channels=None, log=print,
            format='zip', shards=16):
    """Writes the dataset; returns a summary dict (counts of written, converted and skipped images).

    ``format`` 'zip': NVIDIA's zip of PNGs + dataset.json; 'tfrecord': a directory of ``shards``
    TFRecord files + dataset.json (the same images and labels; the same fingerprint).
    ``channels`` (1 or 3): every image is converted to it; None: the majority of the source's
    images. Corrupt images and decompression bombs are skipped and counted; labels are checked
    (``check_label``).
    """
    from PIL import Image
    from afgan_tf import image_reading
    if resolution is not None and (resolution < 4 or resolution & (resolution - 1)):
        raise DatasetError(f'--resolution must be a power of two >= 4, got {resolution}')
    if channels not in (None, 1, 3):
        raise DatasetError(f'--channels must be 1 or 3, got {channels}')
    if format not in FORMATS:
        raise DatasetError(f'--format must be one of {FORMATS}, got {format!r}')
    dest = pathlib.Path(dest)
    writer = _ZipWriter(dest) if format == 'zip' else _TFRecordWriter(dest, shards)
    counts = dict(written=0, corrupt=0, too_large=0, unreadable=0, converted=0, alpha=0, animated=0, enlarged=0)
    labels, shape = [], None
    try:
        for name, img, label in _iterate_source(source, max_images, channels, counts):
            if img is None:
                continue
            if resolution is not None:
                try:
                    img = fit_image(img, resolution, transform, counts)
                except Image.DecompressionBombError:
                    counts['too_large'] += 1
                    continue
            elif img.shape[0] != img.shape[1] or img.shape[0] & (img.shape[0] - 1) or img.shape[0] < 4:
                raise DatasetError(f'{name} is {img.shape[1]}x{img.shape[0]}: give --resolution (a power of two '
                                   '>= 4) to crop/pad and resize')
            if shape is None:
                shape = img.shape
            elif img.shape != shape:
                raise DatasetError(f'images have different sizes ({name} is {img.shape[:2]}, the first was '
                                   f'{shape[:2]}): give --resolution to bring them to one size')
            idx = counts['written']
            archive_name = f'{idx // 1000:05d}/img{idx:08d}.png'
            buf = io.BytesIO()
            Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format='png', compress_level=0,
                                                                            optimize=False)
            label = None if label is None else check_label(label, name)
            writer.add(idx, archive_name, buf.getvalue(), label)
            labels.append([archive_name, label])
            counts['written'] += 1
        if counts['written'] == 0:
            raise DatasetError(f'no usable images in {source} ({counts["corrupt"]} corrupt, '
                               f'{counts["too_large"]} too large to decode safely, {counts["unreadable"]} not '
                               'regular files or over the size limit)')
        has_labels = all(label is not None for _, label in labels)
        writer.finish(json.dumps({'labels': labels if has_labels else None}), shape, counts['written'])
    except BaseException:
        writer.abort()
        raise
    target = counts.pop('channels')
    if counts['converted']:
        log(f'converted {counts["converted"]} image(s) to {"RGB" if target == 3 else "greyscale"} '
            f'(--channels {target}' + (', the majority' if channels is None else '') + ')')
    if counts['alpha']:
        log(f'composited {counts["alpha"]} image(s) with transparency on black')
    if counts['animated']:
        log(f'used the first frame only of {counts["animated"]} animated image(s)')
    if counts['enlarged']:
        log(f'warning: enlarged {counts["enlarged"]} image(s) more than {ENLARGE_WARNING}x to {shape[0]}x{shape[0]} '
            f'(the smallest from {counts.pop("smallest")} pixels across): they will be blurry or flat')
    if counts['corrupt'] or counts['too_large'] or counts['unreadable']:
        log(f'skipped {counts["corrupt"]} corrupt image(s), {counts["too_large"]} image(s) with more pixels than '
            f'the decompression-bomb limit ({Image.MAX_IMAGE_PIXELS * 2}) and {counts["unreadable"]} file(s) that are '
            f'not regular files or larger than {image_reading.MAX_IMAGE_FILE_BYTES} bytes')
    return dict(counts, resolution=int(shape[0]), channels=int(shape[2]), labels=has_labels, dest=str(dest),
                format=format)


# ----------------------------------------------------------------------------
# Reading.

TFRECORD_FORMAT = 'afgan-tfrecord'        # dataset.json 'format' of a TFRecord dataset directory.


class _Fingerprint:
    """The content hash of a dataset: SHA-1 over every image's name, size and CRC-32 (a zip's own
    directory holds these, so a zip costs no pass over its images)."""

    def __init__(self):
        import hashlib
        self.h = hashlib.sha1()

    def add(self, name, size, crc):
        self.h.update(f'{name}\0{size}\0{crc:08x}\n'.encode())

    def hexdigest(self):
        return self.h.hexdigest()


def fingerprint(path):
    """A content hash of a dataset zip, folder or TFRecord directory (hex). A TFRecord directory written
    by ``convert`` records the hash the same images have as a zip, so both fingerprints agree."""
    return DatasetReader.open(path).fingerprint


class DatasetReader:
    """A dataset on disk, read lazily: a zip or folder of PNGs (``convert``'s format, NVIDIA's), or a
    directory of TFRecord shards (``convert(..., format='tfrecord')``). ``open`` chooses the reader.

    Attributes: ``num_images``, ``resolution``, ``channels``, ``labels`` (int array [N] or None),
    ``fingerprint`` (content hash). ``keys(epoch, seed, shuffle)`` is a tf.data stream of what one
    epoch visits, in its order (a function of (seed, epoch) only); ``read(stream)`` turns a stream of
    (position, key) into (position, uint8 image [H, W, C], dataset index) inside tf.data, so skipping
    to a position costs no reading or decoding.
    """

    def __init__(self, path):
        self.path = str(path)

    @staticmethod
    def open(path):
        """The reader of ``path``; DatasetError if it is not a dataset."""
        if isinstance(path, DatasetReader):
            return path
        import tensorflow as tf
        text = str(path)
        if tf.io.gfile.isdir(text) and tf.io.gfile.exists(f'{text}/dataset.json') and \
                tf.io.gfile.glob(f'{text}/*.tfrecord'):
            return TFRecordReader(text)
        local = pathlib.Path(text)
        if local.is_dir():
            return FolderReader(local)
        if local.is_file():
            return ZipReader(local)
        raise DatasetError(f'{path} not found')

    def _check_shape(self, shape):
        h, w, c = shape
        if h != w or h & (h - 1) or h < 4 or c not in (1, 3):
            raise DatasetError(f'{self.path}: images must be square with a power-of-two size >= 4 and 1 or 3 '
                               f'channels, got {w}x{h}x{c} (convert it with afgan-dataset)')
        self.resolution, self.channels = int(h), int(c)

    @property
    def c_dim(self):
        return int(self.labels.max()) + 1 if self.labels is not None and len(self.labels) else 0

    def keys(self, epoch, seed, shuffle):
        return _tf().data.Dataset.from_tensor_slices(example_order(self.num_images, seed, epoch, shuffle))

    def read(self, stream):
        """A stream of (position, key) -> a stream of (position, uint8 image, dataset index), read and
        decoded in parallel, in order."""
        tf = _tf()
        return stream.map(lambda position, key: (position, *self.load(key)), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)

    def _decode(self, data):
        tf = _tf()
        img = tf.io.decode_image(data, channels=self.channels, dtype=tf.uint8, expand_animations=False)
        return tf.ensure_shape(img, [self.resolution, self.resolution, self.channels])


def _tf():
    import tensorflow as tf
    return tf


class _ImageFilesReader(DatasetReader):
    """Zip and folder readers: image names in sorted order, labels from dataset.json."""

    def _finish(self, names, first_bytes, infos):
        if not names:
            raise DatasetError(f'{self.path} contains no images')
        from PIL import Image
        try:
            with Image.open(io.BytesIO(first_bytes)) as img:
                from afgan_tf import image_reading
                shape = (img.size[1], img.size[0], image_reading.channel_count(img.mode))
        except Exception as e:  # noqa: BLE001 - any unreadable first image.
            raise DatasetError(f'{self.path}: cannot read {names[0]}: {e}') from None
        self._check_shape(shape)
        self.names, self.num_images = names, len(names)
        labels = _source_labels(self.path)
        self.labels = np.array([labels[n] for n in names], np.int64) \
            if labels and all(labels.get(n) is not None for n in names) else None
        self._infos = infos

    @property
    def fingerprint(self):
        if getattr(self, '_fingerprint', None) is None:
            fp = _Fingerprint()
            for name, size, crc in sorted(self._infos()):
                fp.add(name, size, crc)
            self._fingerprint = fp.hexdigest()
        return self._fingerprint


class ZipReader(_ImageFilesReader):
    """A zip of images, its members read through a zipfile handle in ``tf.py_function`` (TensorFlow has
    no op that reads a byte range of a file; a TFRecord directory is read without Python). As with any
    ``py_function`` pipeline, delete an iterator you created yourself before the interpreter exits:
    TensorFlow deadlocks on one that is still alive at shutdown (training and metrics release theirs).
    """

    def __init__(self, path):
        super().__init__(path)
        from afgan_tf import image_reading
        try:
            self._zip = zipfile.ZipFile(path)
            names = image_reading.list_images(path)
            self._finish(names, self._zip.read(names[0]) if names else b'',
                         lambda: [(i.filename, i.file_size, i.CRC) for i in self._zip.infolist()])
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise DatasetError(f'{path} is neither a folder nor a zip of images ({e})') from None

    def load(self, index):
        tf = _tf()
        names = self.names
        data = tf.py_function(lambda i: self._zip.read(names[int(i)]), [index], tf.string)
        return self._decode(tf.reshape(data, [])), index


class FolderReader(_ImageFilesReader):
    """A folder of images (files read by tf.io.read_file)."""

    def __init__(self, path):
        super().__init__(path)
        from afgan_tf import image_reading
        self._root = pathlib.Path(path)
        names = image_reading.list_images(path)
        self._paths = None
        self._finish(names, (self._root / names[0]).read_bytes() if names else b'', self._file_infos)

    def _file_infos(self):
        import zlib
        out = []
        for file in sorted(p for p in self._root.rglob('*') if p.is_file()):
            data = file.read_bytes()
            out.append((file.relative_to(self._root).as_posix(), len(data), zlib.crc32(data)))
        return out

    def load(self, index):
        tf = _tf()
        if self._paths is None:
            self._paths = tf.constant([str(self._root / n) for n in self.names])
        return self._decode(tf.io.read_file(tf.gather(self._paths, index))), index


class ArrayReader(DatasetReader):
    """Images already in memory (uint8 [N, H, W, C]): small data and tests."""

    def __init__(self, images, labels=None):
        super().__init__('<array>')
        self.images = np.asarray(images)
        self._check_shape(self.images.shape[1:])
        self.num_images = len(self.images)
        self.labels = None if labels is None else np.asarray(labels, np.int64)
        self._tensor = None
        self.fingerprint = None

    def load(self, index):
        if self._tensor is None:
            self._tensor = _tf().constant(self.images)
        return _tf().gather(self._tensor, index), index


class TFRecordReader(DatasetReader):
    """A directory of TFRecord shards and dataset.json (any path tf.io.gfile can open). An epoch visits
    the shards in an order permuted by (seed, epoch), interleaved, and permutes windows of records
    (``shuffle_window``) by (seed, epoch, window): deterministic, and nothing but one window is held
    in memory."""

    SHUFFLE_BYTES = 512 << 20      # Memory for the shuffle window.
    SHUFFLE_MAX = 4096             # At most this many records in one window.

    def __init__(self, path):
        super().__init__(path)
        tf = _tf()
        try:
            meta = json.loads(tf.io.gfile.GFile(f'{path}/dataset.json').read())
        except ValueError as e:
            raise DatasetError(f'{path}/dataset.json is not valid JSON: {e}') from None
        if not isinstance(meta, dict) or meta.get('format') != TFRECORD_FORMAT:
            raise DatasetError(f'{path}/dataset.json does not describe an {TFRECORD_FORMAT} dataset')
        self.shards = [f'{path}/{name}' for name in meta['shards']]
        self.num_images = int(meta['num_images'])
        self._check_shape(tuple(meta['shape']))
        labels = meta.get('labels')
        self.labels = None if labels is None else np.array([check_label(v, f'{path}/dataset.json') for v in labels],
                                                             np.int64)
        self.fingerprint = meta['fingerprint']

    def keys(self, epoch, seed, shuffle):
        tf = _tf()
        files = tf.constant(self.shards)
        if shuffle:
            files = tf.random.experimental.stateless_shuffle(
                files, seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=min(4, len(self.shards)), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if not shuffle:
            return ds
        # Windows of records, each permuted by a stateless shuffle keyed by (seed, epoch, window): the
        # order is a function of (seed, epoch) only, and one window is all that is held in memory.
        epoch_seed = tf.cast(seed, tf.int64) * 1000003 + tf.cast(epoch, tf.int64)
        return ds.batch(self.shuffle_window).enumerate().map(
            lambda window, records: tf.random.experimental.stateless_shuffle(
                records, seed=tf.stack([epoch_seed, window]))).unbatch()

    @property
    def shuffle_window(self):
        """Records permuted together: as many as fit in SHUFFLE_BYTES (images stored as uncompressed
        PNGs), between 16 and SHUFFLE_MAX."""
        return int(np.clip(self.SHUFFLE_BYTES // (self.resolution ** 2 * self.channels), 16, self.SHUFFLE_MAX))

    def load(self, record):
        tf = _tf()
        example = tf.io.parse_single_example(record, {'image': tf.io.FixedLenFeature([], tf.string),
                                                      'index': tf.io.FixedLenFeature([], tf.int64)})
        return self._decode(example['image']), example['index']


def describe(path):
    """{'num_images', 'resolution', 'channels', 'c_dim' (0 without labels), 'fingerprint'} of a dataset
    (no image is loaded)."""
    reader = DatasetReader.open(path)
    return dict(num_images=reader.num_images, resolution=reader.resolution, channels=reader.channels,
                c_dim=reader.c_dim, fingerprint=reader.fingerprint)


def iterate_batches(path, batch_size, max_images=None):
    """uint8 NHWC batches of a dataset in its stored order (for statistics), streamed."""
    ds = make_dataset(path, batch_size, shuffle=False, repeat=False, raw=True, drop_remainder=False)
    count = 0
    for batch in ds:
        batch = batch.numpy()
        if max_images is not None:
            batch = batch[:max_images - count]
        count += len(batch)
        if len(batch):
            yield batch
        if max_images is not None and count >= max_images:
            return


def load_images(path, max_images=None):
    """(uint8 [N, H, W, C], labels int [N] or None) in memory: for small datasets and tests only
    (training and metrics stream)."""
    reader = DatasetReader.open(path)
    images = np.concatenate(list(iterate_batches(reader, 256, max_images)))
    labels = None if reader.labels is None else reader.labels[:len(images)]
    return images, labels


def example_order(num_examples, seed, epoch, shuffle=True):
    """The dataset indices of one epoch: a permutation that depends only on (seed, epoch)."""
    import tensorflow as tf
    order = tf.range(num_examples, dtype=tf.int64)
    if not shuffle:
        return order
    return tf.random.experimental.stateless_shuffle(
        order, seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))


def example_stream(reader, seed=0, shuffle=True, repeat=True, start=0):
    """tf.data stream of (position, key): epoch e visits ``reader.keys(e)``; ``position`` counts examples
    from the start of training. ``start`` skips the first ``start`` examples (before any decoding), so a
    resumed run continues exactly where the interrupted one was."""
    import tensorflow as tf
    n = reader.num_images
    first_epoch, offset = divmod(int(start), n)
    epochs = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max if repeat else first_epoch + 1)

    def epoch_examples(epoch):
        positions = tf.data.Dataset.range(epoch * n, (epoch + 1) * n)
        return tf.data.Dataset.zip(positions, reader.keys(epoch, seed, shuffle))
    return epochs.flat_map(epoch_examples).skip(offset)


def make_dataset(source, batch_size, labels=None, c_dim=0, xflip=False, shuffle=True, seed=0, repeat=True,
                 input_context=None, start=0, raw=False, drop_remainder=True):
    """tf.data pipeline of float32 NHWC images in [-1, 1] (and one-hot labels when c_dim > 0), streamed.

    Args:
        source: a dataset path (zip, folder, TFRecord directory), a DatasetReader, or uint8 images
            [N, H, W, C] in memory (then ``labels`` gives their labels).
        batch_size: global batch size (per replica with ``input_context``).
        xflip: mirror half of the images (a function of seed and position).
        shuffle, seed, repeat, start: see ``example_stream``; the global batch of step s is examples
            [s * batch, (s + 1) * batch) of the stream, so ``start = step * batch`` resumes exactly.
        input_context: from ``strategy.distribute_datasets_from_function``: shards the stream per
            input pipeline and makes ``batch_size`` the per-replica batch.
        raw: yield uint8 images only (statistics).

    Reading and decoding run in parallel, a bounded prefetch follows; nothing holds the dataset in
    memory or in the graph.
    """
    import tensorflow as tf
    reader = ArrayReader(source, labels) if isinstance(source, np.ndarray) else DatasetReader.open(source)
    one_hot = None
    if c_dim:
        if reader.labels is None:
            raise DatasetError('the network is conditional (c_dim > 0) but the dataset has no labels')
        one_hot = tf.one_hot(tf.constant(reader.labels), c_dim)
    ds = example_stream(reader, seed, shuffle, repeat, start)
    if input_context is not None:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    flip_seed = tf.constant(int(seed) + 0x5EED, tf.int64)

    def prepare(position, img, index):
        if raw:
            return img
        img = tf.cast(img, tf.float32) / 127.5 - 1
        if xflip:
            coin = tf.random.stateless_uniform([], seed=tf.stack([flip_seed, position]))
            img = tf.where(coin < 0.5, tf.reverse(img, axis=[1]), img)
        return (img, tf.gather(one_hot, index)) if c_dim else img
    return reader.read(ds).map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
        .batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
