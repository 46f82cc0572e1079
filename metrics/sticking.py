"""Texture-sticking diagnostics (the paper's Figure 1).

(a) Average many images generated from a small neighbourhood of a central latent. A
    generator whose details follow the objects gives a blurry average; one whose details
    stick to pixel coordinates gives a sharp one. ``neighborhood_average`` returns, with the
    average, its sharpness ratio: the high-frequency energy of the average relative to that of
    the individual images (mean over the images), close to 1 = sticking, close to 0 = none.
(b) Stack the centre pixel column of frames along a latent interpolation side by side:
    horizontal streaks are details that stay at fixed image coordinates.
"""

import numpy as np
import scipy.ndimage


def high_frequency_energy(images, sigma=2.0):
    """Mean squared difference between NHWC images and their Gaussian blur (per image)."""
    images = np.asarray(images, np.float64)
    blurred = scipy.ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode='reflect')
    return np.mean((images - blurred) ** 2, axis=(1, 2, 3))


def neighborhood_latents(z0, num, sigma, seed=0):
    """``num`` latents around ``z0`` ([z_dim]): z0 + sigma * N(0, 1)."""
    rng = np.random.default_rng(seed)
    z0 = np.asarray(z0, np.float32).reshape(1, -1)
    return (z0 + sigma * rng.standard_normal([num, z0.shape[1]])).astype(np.float32)


def neighborhood_average(generate, z0, num=64, sigma=0.2, batch=8, seed=0):
    """(average image [H, W, C], central image, sharpness ratio); ``generate(z) -> NHWC`` floats."""
    z = neighborhood_latents(z0, num, sigma, seed)
    total, hf = None, []
    for i in range(0, num, batch):
        images = np.asarray(generate(z[i:i + batch]), np.float64)
        total = images.sum(axis=0) if total is None else total + images.sum(axis=0)
        hf.append(high_frequency_energy(images))
    average = total / num
    central = np.asarray(generate(np.asarray(z0, np.float32).reshape(1, -1)))[0]
    ratio = float(high_frequency_energy(average[np.newaxis])[0] / max(np.mean(np.concatenate(hf)), 1e-12))
    return average.astype(np.float32), central, ratio


def interpolation_slices(generate, z_start, z_end, frames=64, column=None, batch=8):
    """[H, frames, C] image: the pixel column ``column`` (default: centre) of each interpolation frame."""
    t = np.linspace(0, 1, frames, dtype=np.float32)[:, np.newaxis]
    z = (1 - t) * np.asarray(z_start, np.float32).reshape(1, -1) + t * np.asarray(z_end, np.float32).reshape(1, -1)
    cols = []
    for i in range(0, frames, batch):
        images = np.asarray(generate(z[i:i + batch]))
        c = images.shape[2] // 2 if column is None else column
        cols.append(images[:, :, c, :])
    return np.transpose(np.concatenate(cols), (1, 0, 2))
