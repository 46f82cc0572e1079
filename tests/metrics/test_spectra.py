"""afgan_tf.metrics.spectra: spectra of known signals."""

import numpy as np

from afgan_tf.metrics import spectra


def test_spectrum_of_a_sinusoid_peaks_at_its_frequency():
    x = np.arange(32)
    wave = 128 + 100 * np.sin(2 * np.pi * 5 * x / 32)
    img = np.tile(wave[np.newaxis, :, np.newaxis], [32, 1, 1])[np.newaxis]
    acc = spectra.SpectrumAccumulator(32, mean=128, std=50, interp=1)
    acc.add(img)
    s = acc.result()
    assert np.unravel_index(np.argmax(s), s.shape) in ((0, 5), (0, 27))
