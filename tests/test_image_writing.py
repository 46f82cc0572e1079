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
