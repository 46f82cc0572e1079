"""Low-pass filter design for the alias-free generator.

Two designs, both windowed with a Kaiser window whose shape follows from the
number of taps and the transition-band width:

* separable: a 1-D Kaiser-windowed sinc (the same design as ``scipy.signal.firwin``),
  applied along rows and columns;
* radial: a radially symmetric 2-D Kaiser-windowed jinc, used by StyleGAN3-R for
  the downsampling filters of its non-critically-sampled layers.
"""

import numpy as np
import scipy.signal
import scipy.special


def design_lowpass_filter(numtaps, cutoff, width, fs, radial=False):
    """Designs a low-pass FIR filter.

    Args:
        numtaps: Number of taps (filter length along one axis). 1 = identity.
        cutoff: Cutoff frequency, in the same unit as ``fs``.
        width: Width of the transition band (twice the half-width f_h).
        fs: Sampling rate the filter operates at.
        radial: False = separable sinc filter (1-D taps), True = radially
            symmetric jinc filter (2-D taps).

    Returns:
        ``None`` for the identity filter (``numtaps == 1``), else a float32 numpy
        array of shape ``[numtaps]`` (separable) or ``[numtaps, numtaps]`` (radial).
    """
    numtaps = int(numtaps)
    if numtaps < 1:
        raise ValueError(f'numtaps must be >= 1, got {numtaps}')
    if numtaps == 1:
        return None
    if not radial:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return np.asarray(taps, dtype=np.float32)

    # Radial: jinc(r) = J1(2 pi fc r) / (pi r) on a grid centred between taps.
    coords = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    radius = np.hypot(*np.meshgrid(coords, coords))
    taps = scipy.special.j1(2 * cutoff * (np.pi * radius)) / (np.pi * radius)
    attenuation = scipy.signal.kaiser_atten(numtaps, width / (fs / 2))
    window = np.kaiser(numtaps, scipy.signal.kaiser_beta(attenuation))
    taps = taps * np.outer(window, window)
    taps = taps / np.sum(taps)
    return taps.astype(np.float32)


def setup_filter(f, normalize=True, flip_filter=False, gain=1, separable=None):
    """Prepares a small FIR filter for ``upfirdn2d`` (the StyleGAN2 convention).

    A 1-D list such as ``[1, 3, 3, 1]`` becomes the separable filter it describes;
    it is normalised to unit DC gain when ``normalize``. Unlike the reference, short
    1-D filters stay separable (the outer product is the same filter).

    Returns:
        float32 numpy array, ``[taps]`` (separable) or ``[h, w]``.
    """
    f = np.asarray(1 if f is None else f, dtype=np.float32)
    if f.ndim == 0:
        f = f[np.newaxis]
    if f.ndim not in (1, 2) or f.size == 0:
        raise ValueError(f'filter must be 1-D or 2-D and non-empty, got shape {f.shape}')
    if separable is False and f.ndim == 1:
        f = np.outer(f, f)
    if normalize:
        f = f / np.sum(f)
    if flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return np.ascontiguousarray(f, dtype=np.float32)
