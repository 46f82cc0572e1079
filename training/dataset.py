"""Datasets: the reference's format (a zip of PNGs + dataset.json) and a tf.data loader.

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

Reading: ``load_images(path)`` returns uint8 NHWC images (and labels) in memory, and
``make_dataset`` builds the tf.data pipeline (shuffle, x-flip, batch, prefetch,
per-replica sharding).
"""

import gzip
import io
import json
import pathlib
import zipfile

import numpy as np

FASHION_MNIST_DIR = pathlib.Path('/usr/share/datasets/fashion-mnist')
TRANSFORMS = ('center-crop', 'center-crop-wide', 'pad', 'resize')


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
    source = pathlib.Path(source)
    try:
        names = image_reading.list_images(source)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DatasetError(str(e)) from None
    if source.is_dir():
        return names, lambda name: (source / name).read_bytes(), lambda: None
    archive = zipfile.ZipFile(source)
    return names, archive.read, archive.close


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
    ``corrupt``, ``too_large`` (decompression bombs: more pixels than PIL's limit) and
    ``converted`` (images brought to the other channel count), and ``channels``.
    """
    from PIL import Image, UnidentifiedImageError
    from afgan_tf import image_reading
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
                with Image.open(io.BytesIO(read(name))) as img:
                    img.load()
                    if image_reading.channel_count(img.mode) != channels:
                        counts['converted'] = counts.get('converted', 0) + 1
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
    source = pathlib.Path(source)
    where = f'{source}/dataset.json'
    try:
        if source.is_dir():
            text = (source / 'dataset.json').read_text() if (source / 'dataset.json').is_file() else None
        else:
            with zipfile.ZipFile(source) as z:
                text = z.read('dataset.json').decode() if 'dataset.json' in z.namelist() else None
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

def fit_image(img, resolution, transform='center-crop'):
    """Brings an HWC uint8 image to resolution x resolution (the reference's transforms)."""
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
        pil = pil.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
        pil = pil.resize((resolution, resolution // 2), Image.LANCZOS)
        canvas = Image.new(pil.mode, (resolution, resolution))
        canvas.paste(pil, (0, (resolution - resolution // 2) // 2))
        pil = canvas
    elif transform == 'pad':
        side = max(h, w)
        canvas = Image.new(pil.mode, (side, side))
        canvas.paste(pil, ((side - w) // 2, (side - h) // 2))
        pil = canvas
    elif transform != 'resize':
        raise DatasetError(f'transform must be one of {TRANSFORMS}, got {transform!r}')
    if pil.size != (resolution, resolution):
        pil = pil.resize((resolution, resolution), Image.LANCZOS)
    out = np.asarray(pil)
    return out[:, :, np.newaxis] if out.ndim == 2 else out


def convert(source, dest, resolution=None, transform='center-crop', max_images=None, channels=None, log=print):
    """Writes the dataset zip; returns a summary dict (counts of written, converted and skipped images).

    ``channels`` (1 or 3): every image is converted to it; None: the majority of the source's
    images. Corrupt images and decompression bombs are skipped and counted; labels are checked
    (``check_label``).
    """
    from PIL import Image
    if resolution is not None and (resolution < 4 or resolution & (resolution - 1)):
        raise DatasetError(f'--resolution must be a power of two >= 4, got {resolution}')
    if channels not in (None, 1, 3):
        raise DatasetError(f'--channels must be 1 or 3, got {channels}')
    dest = pathlib.Path(dest)
    if dest.suffix != '.zip':
        raise DatasetError(f'--dest must be a .zip file, got {dest}')
    tmp = dest.with_name(f'.{dest.name}.tmp')
    counts = dict(written=0, corrupt=0, too_large=0, converted=0)
    labels, shape = [], None
    try:
        with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED) as out:
            for name, img, label in _iterate_source(source, max_images, channels, counts):
                if img is None:
                    continue
                if resolution is not None:
                    img = fit_image(img, resolution, transform)
                elif img.shape[0] != img.shape[1] or img.shape[0] & (img.shape[0] - 1):
                    raise DatasetError(f'{name} is {img.shape[1]}x{img.shape[0]}: give --resolution (a power of two) '
                                       'to crop/pad and resize')
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
                out.writestr(archive_name, buf.getvalue())
                labels.append([archive_name, None if label is None else check_label(label, name)])
                counts['written'] += 1
            if counts['written'] == 0:
                raise DatasetError(f'no usable images in {source} ({counts["corrupt"]} corrupt, '
                                   f'{counts["too_large"]} too large to decode safely)')
            has_labels = all(label is not None for _, label in labels)
            out.writestr('dataset.json', json.dumps({'labels': labels if has_labels else None}))
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    target = counts.pop('channels')
    if counts['converted']:
        log(f'converted {counts["converted"]} image(s) to {"RGB" if target == 3 else "greyscale"} '
            f'(--channels {target}' + (', the majority' if channels is None else '') + ')')
    if counts['corrupt'] or counts['too_large']:
        log(f'skipped {counts["corrupt"]} corrupt image(s) and {counts["too_large"]} image(s) with more pixels than '
            f'the decompression-bomb limit ({Image.MAX_IMAGE_PIXELS * 2})')
    return dict(counts, resolution=int(shape[0]), channels=int(shape[2]), labels=has_labels, dest=str(dest))


# ----------------------------------------------------------------------------
# Loading.

def fingerprint(path):
    """A content hash of a dataset zip or folder (hex). A zip's is read from its directory (every
    member's name, size and CRC-32), so it costs no pass over the images; a folder's hashes every file."""
    import hashlib
    from afgan_tf.cache import file_digest
    path = pathlib.Path(path)
    h = hashlib.sha1()
    if path.is_dir():
        for file in sorted(p for p in path.rglob('*') if p.is_file()):
            h.update(f'{file.relative_to(path).as_posix()}\0{file_digest(file)}\n'.encode())
        return h.hexdigest()
    try:
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                h.update(f'{info.filename}\0{info.file_size}\0{info.CRC:08x}\n'.encode())
    except zipfile.BadZipFile:
        raise DatasetError(f'{path} is neither a folder nor a zip') from None
    return h.hexdigest()


def describe(path):
    """{'num_images', 'resolution', 'channels', 'c_dim' (0 without labels), 'fingerprint'} of a dataset
    zip or folder, from its first image and its labels (the images are not loaded)."""
    from afgan_tf import image_reading
    try:
        names = image_reading.list_images(path)
        first = next(image_reading.iterate_images(path, 1), None)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DatasetError(f'{path}: {e}') from None
    if first is None:
        raise DatasetError(f'{path} contains no images')
    _, img = first
    if img.shape[0] != img.shape[1] or img.shape[0] & (img.shape[0] - 1) or img.shape[0] < 4:
        raise DatasetError(f'{path}: images must be square with a power-of-two size >= 4, got '
                           f'{img.shape[1]}x{img.shape[0]} (convert it with afgan-dataset)')
    labels = _source_labels(path)
    complete = labels and all(labels.get(n) is not None for n in names)
    return dict(num_images=len(names), resolution=int(img.shape[0]), channels=int(img.shape[2]),
                c_dim=max(labels.values()) + 1 if complete else 0, fingerprint=fingerprint(path))


def load_images(path, max_images=None):
    """(uint8 [N, H, W, C], labels int [N] or None) from a dataset zip or folder written by ``convert``."""
    from afgan_tf import image_reading
    images, names = [], []
    for name, img in image_reading.iterate_images(path, max_images):
        images.append(img)
        names.append(name)
    if not images:
        raise DatasetError(f'{path} contains no images')
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DatasetError(f'{path} has images of several shapes {sorted(shapes)[:3]}: convert it with afgan-dataset')
    labels = _source_labels(path)
    label_array = np.array([labels[n] for n in names], np.int64) \
        if labels and all(labels.get(n) is not None for n in names) else None
    return np.stack(images), label_array


def example_order(num_examples, seed, epoch, shuffle=True):
    """The dataset indices of one epoch: a permutation that depends only on (seed, epoch)."""
    import tensorflow as tf
    order = tf.range(num_examples, dtype=tf.int64)
    if not shuffle:
        return order
    return tf.random.experimental.stateless_shuffle(
        order, seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))


def example_stream(num_examples, seed=0, shuffle=True, repeat=True, start=0):
    """tf.data stream of (position, dataset index): epoch e visits ``example_order(e)``; ``position``
    counts examples from the start of training. ``start`` skips the first ``start`` examples, so a
    resumed run continues exactly where the interrupted one was."""
    import tensorflow as tf
    n = int(num_examples)
    first_epoch, offset = divmod(int(start), n)
    epochs = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max if repeat else first_epoch + 1)

    def epoch_examples(epoch):
        positions = tf.data.Dataset.range(epoch * n, (epoch + 1) * n)
        return tf.data.Dataset.zip(positions, tf.data.Dataset.from_tensor_slices(
            example_order(n, seed, epoch, shuffle)))
    return epochs.flat_map(epoch_examples).skip(offset)


def make_dataset(images, batch_size, labels=None, c_dim=0, xflip=False, shuffle=True, seed=0, repeat=True,
                 input_context=None, start=0):
    """tf.data pipeline of float32 NHWC images in [-1, 1] (and one-hot labels when c_dim > 0).

    The order of examples and their x-flips are functions of (seed, epoch, position) only
    (``example_stream``): the global batch of step s is examples [s * batch, (s + 1) * batch) of the
    stream, so ``start = step * batch`` resumes a run exactly. ``input_context`` (from
    ``strategy.distribute_datasets_from_function``) shards the stream per input pipeline and
    makes ``batch_size`` the per-replica batch.
    """
    import tensorflow as tf
    images = np.asarray(images)
    one_hot = None
    if c_dim:
        if labels is None:
            raise DatasetError('the network is conditional (c_dim > 0) but the dataset has no labels')
        one_hot = tf.constant(np.eye(c_dim, dtype=np.float32)[np.asarray(labels)])
    ds = example_stream(len(images), seed, shuffle, repeat, start)
    if input_context is not None:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    pixels = tf.constant(images)
    flip_seed = tf.constant(int(seed) + 0x5EED, tf.int64)

    def prepare(position, index):
        img = tf.cast(tf.gather(pixels, index), tf.float32) / 127.5 - 1
        if xflip:
            coin = tf.random.stateless_uniform([], seed=tf.stack([flip_seed, position]))
            img = tf.where(coin < 0.5, tf.reverse(img, axis=[1]), img)
        return (img, tf.gather(one_hot, index)) if c_dim else img
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
        .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
