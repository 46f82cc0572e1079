"""Datasets: the reference's format (a zip of PNGs + dataset.json) and a tf.data loader.

Writing: ``convert(source, dest, resolution, transform)`` reads a folder or zip of
images, or the built-in ``fashion-mnist`` source (Debian package
``dataset-fashion-mnist``, files in ``/usr/share/datasets/fashion-mnist/``), brings
every image to ``resolution`` and writes ``dest`` as NVIDIA's dataset_tool.py does:
``00000/img00000000.png`` ... and ``dataset.json`` with ``{"labels": [[name, label], ...]}``
(or ``null``). Corrupt files are skipped and counted; images whose channel count
differs from the first are skipped and counted; sizes that differ without
``resolution`` are refused with a count.

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


def _iterate_source(source, max_images=None):
    """Yields (name, uint8 HWC image or None if corrupt, label or None)."""
    from afgan_tf import image_files
    if str(source) == 'fashion-mnist':
        images, labels = fashion_mnist()
        for i in range(len(images) if max_images is None else min(max_images, len(images))):
            yield f'fashion-mnist/{i}', images[i], int(labels[i])
        return
    from PIL import Image, UnidentifiedImageError
    source = pathlib.Path(source)
    names = image_files.list_images(source)[:max_images]
    labels = _source_labels(source)
    archive = zipfile.ZipFile(source) if not source.is_dir() else None
    try:
        for name in names:
            try:
                data = archive.read(name) if archive else (source / name).read_bytes()
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    img = img.convert('L' if img.mode in ('L', 'I', 'I;16', '1', 'LA') else 'RGB')
                    array = np.asarray(img)
            except (OSError, UnidentifiedImageError, ValueError):
                yield name, None, None
                continue
            yield name, array[:, :, np.newaxis] if array.ndim == 2 else array, labels.get(name)
    finally:
        if archive:
            archive.close()


def _source_labels(source):
    """Labels from a source's own dataset.json, if any."""
    source = pathlib.Path(source)
    try:
        if source.is_dir():
            text = (source / 'dataset.json').read_text() if (source / 'dataset.json').is_file() else None
        else:
            with zipfile.ZipFile(source) as z:
                text = z.read('dataset.json').decode() if 'dataset.json' in z.namelist() else None
    except (OSError, KeyError, zipfile.BadZipFile):
        return {}
    labels = (json.loads(text) or {}).get('labels') if text else None
    return {name: label for name, label in labels} if labels else {}


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


def convert(source, dest, resolution=None, transform='center-crop', max_images=None, log=print):
    """Writes the dataset zip; returns a summary dict (counts of written and skipped images)."""
    from PIL import Image
    if resolution is not None and (resolution < 4 or resolution & (resolution - 1)):
        raise DatasetError(f'--resolution must be a power of two >= 4, got {resolution}')
    dest = pathlib.Path(dest)
    if dest.suffix != '.zip':
        raise DatasetError(f'--dest must be a .zip file, got {dest}')
    tmp = dest.with_name(f'.{dest.name}.tmp')
    counts = dict(written=0, corrupt=0, wrong_channels=0)
    labels, shape = [], None
    try:
        with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED) as out:
            for name, img, label in _iterate_source(source, max_images):
                if img is None:
                    counts['corrupt'] += 1
                    continue
                if resolution is not None:
                    img = fit_image(img, resolution, transform)
                elif img.shape[0] != img.shape[1] or img.shape[0] & (img.shape[0] - 1):
                    raise DatasetError(f'{name} is {img.shape[1]}x{img.shape[0]}: give --resolution (a power of two) '
                                       'to crop/pad and resize')
                if shape is None:
                    shape = img.shape
                elif img.shape[2] != shape[2]:
                    counts['wrong_channels'] += 1
                    continue
                elif img.shape != shape:
                    raise DatasetError(f'images have different sizes ({name} is {img.shape[:2]}, the first was '
                                       f'{shape[:2]}): give --resolution to bring them to one size')
                idx = counts['written']
                archive_name = f'{idx // 1000:05d}/img{idx:08d}.png'
                buf = io.BytesIO()
                Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format='png', compress_level=0,
                                                                                optimize=False)
                out.writestr(archive_name, buf.getvalue())
                labels.append([archive_name, label])
                counts['written'] += 1
            if counts['written'] == 0:
                raise DatasetError(f'no usable images in {source} ({counts["corrupt"]} corrupt, '
                                   f'{counts["wrong_channels"]} with another channel count)')
            has_labels = all(label is not None for _, label in labels)
            out.writestr('dataset.json', json.dumps({'labels': labels if has_labels else None}))
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if counts['corrupt'] or counts['wrong_channels']:
        log(f'skipped {counts["corrupt"]} corrupt image(s) and {counts["wrong_channels"]} image(s) whose channel count '
            f'differs from the first ({shape[2]})')
    return dict(counts, resolution=int(shape[0]), channels=int(shape[2]), labels=has_labels, dest=str(dest))


# ----------------------------------------------------------------------------
# Loading.

def load_images(path, max_images=None):
    """(uint8 [N, H, W, C], labels int [N] or None) from a dataset zip or folder written by ``convert``."""
    from afgan_tf import image_files
    images, names = [], []
    for name, img in image_files.iterate_images(path, max_images):
        images.append(img)
        names.append(name)
    if not images:
        raise DatasetError(f'{path} contains no images')
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DatasetError(f'{path} has images of several shapes {sorted(shapes)[:3]}: convert it with afgan-dataset')
    labels = _source_labels(path)
    label_array = np.array([labels[n] for n in names], np.int64) if labels and all(n in labels for n in names) \
        else None
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
