"""afgan_tf.image_reading: listing and decoding images of folders and zips (8/16-bit, grey/RGB/alpha)."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from afgan_tf import image_reading


def test_folders_and_zips_list_and_decode_the_same(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / 'imgs' / 'sub').mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, [4, 4, 3], dtype=np.uint8)).save(tmp_path / 'imgs' / 'b.png')
    Image.fromarray(rng.integers(0, 255, [4, 4], dtype=np.uint8)).save(tmp_path / 'imgs' / 'sub' / 'a.png')
    (tmp_path / 'imgs' / 'notes.txt').write_text('not an image')
    with zipfile.ZipFile(tmp_path / 'imgs.zip', 'w') as z:
        for p in (tmp_path / 'imgs').rglob('*'):
            if p.is_file():
                z.write(p, p.relative_to(tmp_path / 'imgs').as_posix())
    for source in (tmp_path / 'imgs', tmp_path / 'imgs.zip'):
        assert image_reading.list_images(source) == ['b.png', 'sub/a.png']
        arrays = dict(image_reading.iterate_images(source))
        assert arrays['b.png'].shape == (4, 4, 3) and arrays['sub/a.png'].shape == (4, 4, 1)
    with pytest.raises(FileNotFoundError):
        image_reading.list_images(tmp_path / 'missing')
    with pytest.raises(ValueError, match='neither a folder nor a zip'):
        image_reading.list_images(tmp_path / 'imgs' / 'notes.txt')


def _png(array, mode=None):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format='png')
    return Image.open(io.BytesIO(buf.getvalue()))


def test_to_array_scales_16_bit_and_converts_channels():
    ramp = np.array([[0, 257, 32896, 65535]], np.uint16)
    img = _png(ramp)
    assert image_reading.channel_count(img.mode) == 1
    assert image_reading.to_array(img)[..., 0].tolist() == [[0, 1, 128, 255]]
    assert image_reading.to_array(img, channels=3).shape == (1, 4, 3)
    rgba = _png(np.full([2, 2, 4], [10, 20, 30, 40], np.uint8))
    assert image_reading.channel_count(rgba.mode) == 3
    # Transparency is composited on black: value * alpha / 255.
    assert image_reading.to_array(rgba)[0, 0].tolist() == [round(10 * 40 / 255), round(20 * 40 / 255), 5]
    grey = image_reading.to_array(rgba, channels=1)
    luma = round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)
    assert grey.shape == (2, 2, 1) and grey[0, 0, 0] == round(luma * 40 / 255)
    clear = _png(np.full([1, 1, 4], [200, 100, 50, 0], np.uint8))          # Fully transparent: black.
    assert image_reading.to_array(clear).tolist() == [[[0, 0, 0]]] and image_reading.has_alpha(clear)
