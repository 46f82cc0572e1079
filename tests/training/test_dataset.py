"""afgan_tf.training.dataset: conversion, reading, labels, and the deterministic tf.data stream."""

import gzip
import io
import json
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from afgan_tf.training import dataset


def _ten_images(tmp_path):
    """10 distinct 8x8 grey images with labels, in memory and as a folder with dataset.json."""
    images = np.random.default_rng(0).integers(0, 255, [10, 8, 8, 1], dtype=np.uint8)
    labels = np.arange(10) % 3
    folder = tmp_path / 'src'
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img[:, :, 0]).save(folder / f'{i:02d}.png')
    (folder / 'dataset.json').write_text(json.dumps({'labels': [[f'{i:02d}.png', int(v)] for i, v in
                                                                 enumerate(labels)]}))
    return images, labels, folder


@pytest.mark.parametrize('kind', ['array', 'zip', 'folder', 'tfrecord'])
def test_data_order_resumes_at_any_position(kind, tmp_path):
    """The stream is a function of (seed, epoch, position) for every reader: skipping to a step gives
    the same batches, and every epoch visits every image once, in an order that changes per epoch."""
    images, labels, folder = _ten_images(tmp_path)
    if kind == 'array':
        source = images
    elif kind == 'folder':
        source = folder
    else:
        source = tmp_path / ('data.zip' if kind == 'zip' else 'data-tfr')
        dataset.convert(folder, source, format=kind, shards=3)
    kw = dict(labels=labels, c_dim=3, xflip=True, seed=7)
    full = [b for b in dataset.make_dataset(source, 4, **kw).take(8)]
    for step in (1, 2, 5):
        resumed = [b for b in dataset.make_dataset(source, 4, start=step * 4, **kw).take(8 - step)]
        for (a_img, a_c), (b_img, b_c) in zip(full[step:], resumed):
            assert np.array_equal(a_img.numpy(), b_img.numpy()) and np.array_equal(a_c.numpy(), b_c.numpy())
    # Labels travel with their images, whatever the order.
    for img, c in full:
        for one, cls in zip(img.numpy(), np.argmax(c.numpy(), 1)):
            pixels = np.round((one + 1) * 127.5).astype(np.uint8)
            match = [i for i in range(10) if np.array_equal(images[i], pixels) or
                     np.array_equal(images[i], pixels[:, ::-1])]
            assert match and labels[match[0]] == cls
    epochs = [[b.numpy().tobytes() for b in dataset.make_dataset(source, 1, labels=labels, seed=7, raw=True,
                                                                 start=10 * e, repeat=False)]
              for e in range(3)]
    assert all(sorted(e) == sorted(img.tobytes() for img in images) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def _write_idx(path, array):
    header = b'\x00\x00\x08' + bytes([array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_reader(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    _write_idx(tmp_path / 'train-images-idx3-ubyte.gz', images)
    _write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.array([3, 7]))
    x, y = dataset.fashion_mnist(tmp_path)
    assert x.shape == (2, 28, 28, 1) and np.array_equal(x[..., 0], images) and y.tolist() == [3, 7]
    with pytest.raises(dataset.DatasetError, match='apt-get install dataset-fashion-mnist'):
        dataset.fashion_mnist(tmp_path / 'missing')


def test_convert_folder_with_corrupt_and_mixed_channels(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, [40, 30, 3], dtype=np.uint8)).save(src / f'a{i}.png')
    Image.fromarray(rng.integers(0, 255, [40, 30], dtype=np.uint8)).save(src / 'grey.png')
    (src / 'broken.png').write_bytes(b'not a png')
    logs = []
    summary = dataset.convert(src, tmp_path / 'out.zip', resolution=16, log=logs.append)
    assert summary['written'] == 6 and summary['corrupt'] == 1 and summary['converted'] == 1
    assert summary['channels'] == 3 and summary['resolution'] == 16
    assert 'converted 1 image(s) to RGB (--channels 3, the majority)' in logs[0] and 'skipped 1 corrupt' in logs[1]
    with zipfile.ZipFile(tmp_path / 'out.zip') as z:
        names = sorted(z.namelist())
        assert names[0] == '00000/img00000000.png' and 'dataset.json' in names
        assert json.loads(z.read('dataset.json'))['labels'] is None
    images, labels = dataset.load_images(tmp_path / 'out.zip')
    assert images.shape == (6, 16, 16, 3) and labels is None
    # The grey image became RGB with three equal channels (it sorts last: 'grey' > 'a4').
    assert np.array_equal(images[5, ..., 0], images[5, ..., 1]) and np.array_equal(images[5, ..., 0], images[5, ..., 2])
    # --channels 1 converts the RGB majority instead.
    summary = dataset.convert(src, tmp_path / 'grey.zip', resolution=16, channels=1, log=logs.append)
    assert summary['channels'] == 1 and summary['written'] == 6 and summary['converted'] == 5


def test_convert_refuses_mixed_sizes_without_resolution(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    Image.new('RGB', (16, 16)).save(src / 'a.png')
    Image.new('RGB', (32, 32)).save(src / 'b.png')
    with pytest.raises(dataset.DatasetError, match='different sizes'):
        dataset.convert(src, tmp_path / 'out.zip')
    assert not (tmp_path / 'out.zip').exists()
    with pytest.raises(dataset.DatasetError, match='power of two'):
        dataset.convert(src, tmp_path / 'out.zip', resolution=24)


def test_make_dataset_range_labels_and_flip():
    images = np.zeros([4, 8, 8, 1], np.uint8)
    images[:, :, :4] = 255
    ds = dataset.make_dataset(images, 4, labels=np.array([0, 1, 2, 1]), c_dim=3, xflip=True, shuffle=False,
                              repeat=False)
    img, c = next(iter(ds))
    assert img.shape == (4, 8, 8, 1) and float(tf.reduce_min(img)) == -1 and float(tf.reduce_max(img)) == 1
    assert c.shape == (4, 3) and np.array_equal(np.argmax(c, 1), [0, 1, 2, 1])
    with pytest.raises(dataset.DatasetError, match='no labels'):
        dataset.make_dataset(images, 4, c_dim=3)


def _grey(path, size=(16, 16), value=100):
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)


def test_convert_bounds_what_a_source_can_make_it_read_or_allocate(tmp_path):
    """A FIFO and a symlink to /dev/zero are skipped (not read for ever), a zip member inflating like a bomb and
    a padded canvas over the pixel limit are skipped and counted, and every count is reported."""
    import os
    src = tmp_path / 'src'
    src.mkdir()
    for i in range(2):
        _grey(src / f'ok{i}.png')
    os.mkfifo(src / 'fifo.png')
    (src / 'zero.png').symlink_to('/dev/zero')
    Image.new('L', (40000, 1)).save(src / 'wide.png')                     # 201 bytes; 40000^2 once padded.
    messages = []
    summary = dataset.convert(src, tmp_path / 'out.zip', resolution=16, transform='pad', log=messages.append)
    assert summary['written'] == 2 and summary['unreadable'] == 2 and summary['too_large'] == 1, summary
    assert any('not regular files' in m for m in messages)
    bomb = tmp_path / 'src_bomb.zip'
    with zipfile.ZipFile(bomb, 'w', compression=zipfile.ZIP_DEFLATED) as z:
        buf = io.BytesIO()
        Image.fromarray(np.full([16, 16], 7, np.uint8)).save(buf, format='png')
        z.writestr('a.png', buf.getvalue())
        with z.open('b.png', 'w', force_zip64=True) as member:               # 512 MiB of zeros from 500 KB.
            for _ in range(512):
                member.write(bytes(1 << 20))
    assert bomb.stat().st_size < 1 << 20
    summary = dataset.convert(bomb, tmp_path / 'out2.zip', resolution=16, log=messages.append)
    assert summary['written'] == 1 and summary['unreadable'] == 1, summary


def test_convert_counts_alpha_animation_and_enlargement(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for i in range(2):
        _grey(src / f'g{i}.png', size=(32, 32))
    Image.fromarray(np.array([[[200, 100, 50, 0]] * 32] * 32, np.uint8)).save(src / 'clear.png')  # Transparent.
    frames = [Image.fromarray(np.full([32, 32], v, np.uint8)) for v in (10, 200)]
    frames[0].save(src / 'anim.gif', save_all=True, append_images=frames[1:])
    _grey(src / 'tiny.png', size=(1, 1))
    messages = []
    summary = dataset.convert(src, tmp_path / 'out.zip', resolution=32, channels=1, log=messages.append)
    assert summary['alpha'] == 1 and summary['animated'] == 1 and summary['enlarged'] == 1, summary
    assert any('composited 1 image(s) with transparency on black' in m for m in messages)
    assert any('first frame only of 1 animated' in m for m in messages)
    assert any('enlarged 1 image(s)' in m and 'from 1 pixels' in m for m in messages)
    images, _ = dataset.load_images(tmp_path / 'out.zip')
    assert images.shape[0] == 5 and int(images[1].max()) == 0     # clear.png (sorted second): black, not its colour.
    one = tmp_path / 'one'
    one.mkdir()
    _grey(one / 'a.png', size=(1, 1))
    with pytest.raises(dataset.DatasetError, match='power of two >= 4'):
        dataset.convert(one, tmp_path / 'out1.zip')
