"""Average power spectra of images (the paper's spectral analysis, Figure 4 / Appendix).

Each image is whitened with the dataset's pixel mean and standard deviation, multiplied
by a 2-D Kaiser window (normalised to unit energy), zero-padded to ``interp`` times
its size, and its squared FFT magnitude is averaged over channels and images. Heatmaps
are in dB, centred on DC; 1-D slices run along 0 and 45 degrees.
"""

import numpy as np
import scipy.ndimage


class SpectrumAccumulator:
    """Accumulates the average power spectrum of uint8 NHWC images of one size."""

    def __init__(self, image_size, mean, std, beta=8.0, interp=4):
        self.image_size, self.mean, self.std, self.interp = int(image_size), float(mean), float(std), int(interp)
        window = np.kaiser(self.image_size, beta)
        window = window / np.sqrt(np.sum(window ** 2))
        self.window = np.outer(window, window)
        self.size = self.image_size * self.interp
        self.total = np.zeros([self.size, self.size], np.float64)
        self.count = 0

    def add(self, images):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f'images must be [N, {self.image_size}, {self.image_size}, C], got {images.shape}')
        x = (images.astype(np.float64) - self.mean) / self.std
        x = x * self.window[np.newaxis, :, :, np.newaxis]
        spectrum = np.abs(np.fft.fft2(x, s=[self.size, self.size], axes=(1, 2))) ** 2
        self.total += spectrum.mean(axis=3).sum(axis=0)
        self.count += len(images)

    def result(self):
        if self.count == 0:
            raise ValueError('no images were added')
        return self.total / self.count


def pixel_moments(images):
    """(mean, std) of all pixel values of uint8 images (for whitening)."""
    values = np.asarray(images, np.float64)
    return float(values.mean()), float(values.std())


def heatmap_db(spectrum, image_size, smooth=1.25):
    """Centred dB heatmap with the Nyquist row/column repeated (symmetric), optionally smoothed."""
    hmap = np.fft.fftshift(10 * np.log10(np.maximum(spectrum, 1e-30)))
    hmap = np.concatenate([hmap, hmap[:1, :]], axis=0)
    hmap = np.concatenate([hmap, hmap[:, :1]], axis=1)
    if smooth > 0:
        hmap = scipy.ndimage.gaussian_filter(hmap, sigma=spectrum.shape[0] / image_size * smooth, mode='nearest')
    return hmap


def slices(hmap, image_size):
    """0 and 45 degree slices from DC: ``((freqs0, values0), (freqs45, values45))`` in cycles per image."""
    size = hmap.shape[0]
    center = size // 2
    idx = np.arange(center, size)
    freqs0 = np.linspace(0, image_size / 2, num=len(idx))
    freqs45 = np.linspace(0, image_size / np.sqrt(2), num=len(idx))
    return (freqs0, hmap[center, idx]), (freqs45, hmap[idx, idx])


# ----------------------------------------------------------------------------
# Rendering without matplotlib (PIL only).

def colorize(values, vmin=-40.0, vmax=20.0):
    """Float map -> RGB uint8 with a white-to-dark-blue ramp (the paper's 'Blues')."""
    t = np.clip((np.asarray(values) - vmin) / (vmax - vmin), 0, 1)[..., np.newaxis]
    light, dark = np.array([247, 251, 255]), np.array([8, 48, 107])
    return (light + (dark - light) * t).astype(np.uint8)


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def plot_lines(path, series, title='', xlabel='', ylim=(-50, 30), size=(640, 420)):
    """Line plot of ``{label: (x, y)}`` to PNG with PIL (axes, grid, legend)."""
    from PIL import Image, ImageDraw
    width, height = size
    left, right, top, bottom = 50, 15, 30, 40
    img = Image.new('RGB', size, 'white')
    draw = ImageDraw.Draw(img)
    xmax = max(float(np.max(x)) for x, _ in series.values())
    ylo, yhi = ylim

    def px(x, y):
        return (left + (width - left - right) * x / xmax,
                top + (height - top - bottom) * (1 - (np.clip(y, ylo, yhi) - ylo) / (yhi - ylo)))
    for i in range(9):                                   # Grid and tick labels.
        gx, gy = xmax * i / 8, ylo + (yhi - ylo) * i / 8
        draw.line([px(gx, ylo), px(gx, yhi)], fill=(225, 225, 225))
        draw.line([px(0, gy), px(xmax, gy)], fill=(225, 225, 225))
        draw.text((px(gx, ylo)[0] - 8, height - bottom + 5), f'{gx:.0f}', fill='black')
        draw.text((5, px(0, gy)[1] - 6), f'{gy:.0f}', fill='black')
    draw.rectangle([left, top, width - right, height - bottom], outline='black')
    for k, (label, (x, y)) in enumerate(series.items()):
        color = _COLORS[k % len(_COLORS)]
        draw.line([px(a, b) for a, b in zip(x, y)], fill=color, width=2)
        draw.text((width - right - 150, top + 8 + 14 * k), label[:24], fill=color)
    draw.text((left, 8), title, fill='black')
    draw.text((width // 2 - 40, height - 16), xlabel, fill='black')
    img.save(path)
