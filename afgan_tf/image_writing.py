"""Image conversion and grids: generator output (NHWC float, nominally [-1, 1]) to uint8 and PNG."""

import numpy as np


def to_uint8(images, drange=(-1, 1)):
    """``[N, H, W, C]`` float in ``drange`` -> uint8, as NVIDIA's tools do (``x * 127.5 + 128``, clip, floor)."""
    images = np.asarray(images, dtype=np.float32)
    lo, hi = drange
    images = (images - lo) * (255 / (hi - lo)) + 0.5
    return np.floor(np.clip(images, 0, 255)).astype(np.uint8)


def to_uint8_tf(images, drange=(-1, 1)):
    """``to_uint8`` in TensorFlow (for exported graphs)."""
    import tensorflow as tf
    lo, hi = drange
    images = (tf.cast(images, tf.float32) - lo) * (255 / (hi - lo)) + 0.5
    return tf.cast(tf.floor(tf.clip_by_value(images, 0, 255)), tf.uint8)


def image_grid(images, grid=None, drange=(-1, 1), scale=1):
    """Tiles ``[N, H, W, C]`` images into one ``[gh * H * scale, gw * W * scale, C]`` uint8 image.

    Args:
        images: Float images in ``drange`` or uint8 images.
        grid: ``(columns, rows)``; default: as square as possible. Missing cells are black.
        drange: The float range that maps to [0, 255].
        scale: Integer nearest-neighbour enlargement of every pixel (small samples stay sharp).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f'scale must be an integer >= 1, got {scale!r}')
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f'images must be [N, H, W, C] with C in (1, 3, 4), got shape {images.shape}')
    if images.dtype != np.uint8:
        images = to_uint8(images, drange)
    n, h, w, c = images.shape
    if grid is None:
        gw = int(np.ceil(np.sqrt(n)))
        grid = (gw, int(np.ceil(n / gw)))
    gw, gh = grid
    if gw * gh < n:
        raise ValueError(f'grid {gw}x{gh} has room for {gw * gh} images, got {n}')
    canvas = np.zeros([gh * h, gw * w, c], np.uint8)
    for i in range(n):
        y, x = divmod(i, gw)
        canvas[y * h:(y + 1) * h, x * w:(x + 1) * w] = images[i]
    if scale > 1:
        canvas = np.repeat(np.repeat(canvas, scale, axis=0), scale, axis=1)
    return canvas


def save_image(path, image):
    """Writes an ``[H, W, C]`` uint8 image (C = 1, 3 or 4) as PNG (or any format PIL infers)."""
    from PIL import Image
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[:, :, 0]
    Image.fromarray(image).save(path)


def grid_scale(resolution, target=128):
    """The nearest-neighbour enlargement that brings ``resolution`` samples to about ``target`` pixels
    (4 for 32x32, 1 from 128 up)."""
    return max(1, int(target) // max(1, int(resolution)))


def save_image_grid(path, images, grid=None, drange=(-1, 1), scale=1):
    """``image_grid`` + ``save_image``; returns the grid array."""
    canvas = image_grid(images, grid, drange, scale)
    save_image(path, canvas)
    return canvas
