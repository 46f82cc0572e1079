"""Image grid helpers."""

import numpy as np
import pytest
from PIL import Image

from afgan_tf import image_writing as images


def test_to_uint8_maps_range():
    x = np.array([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 4, 1)
    assert images.to_uint8(x).ravel().tolist() == [0, 128, 255, 255]


def test_grid_layout_and_png(tmp_path):
    batch = np.stack([np.full([4, 5, 3], v, np.float32) for v in (-1, 1, 0)])
    grid = images.save_image_grid(tmp_path / 'g.png', batch, grid=(2, 2))
    assert grid.shape == (8, 10, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 5, 0] == 255 and grid[4, 0, 0] == 128 and grid[4, 5, 0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'g.png')), grid)
    with pytest.raises(ValueError, match='grid 1x1'):
        images.image_grid(batch, grid=(1, 1))
    with pytest.raises(ValueError, match='images must be'):
        images.image_grid(np.zeros([4, 4, 3]))


def test_grid_scale_enlarges_each_pixel_by_nearest_neighbour(tmp_path):
    rng = np.random.RandomState(0)
    batch = rng.randint(0, 256, size=[3, 4, 5, 1]).astype(np.uint8)
    plain = images.image_grid(batch, grid=(2, 2))
    big = images.save_image_grid(tmp_path / 'g.png', batch, grid=(2, 2), scale=3)
    assert big.shape == (24, 30, 1)
    for y, x in [(0, 0), (5, 7), (11, 14), (23, 29)]:
        assert big[y, x, 0] == plain[y // 3, x // 3, 0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'g.png')), big[:, :, 0])
    assert [images.grid_scale(r) for r in (16, 32, 64, 128, 1024)] == [8, 4, 2, 1, 1]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match='scale must be an integer'):
            images.image_grid(batch, scale=bad)
