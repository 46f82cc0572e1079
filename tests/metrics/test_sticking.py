"""afgan_tf.metrics.sticking: the texture-sticking ratio."""

import numpy as np

from afgan_tf.metrics import sticking


def test_sticking_ratio_separates_sticky_from_moving_content():
    rng = np.random.default_rng(0)
    pattern = rng.standard_normal([32, 32, 1]).astype(np.float32)

    def sticky(z):        # Details fixed to pixel coordinates whatever the latent.
        return np.repeat(pattern[np.newaxis], len(z), axis=0) * (1 + 0.01 * z[:, :1, None, None])

    def moving(z):        # The same details, shifted with the latent.
        return np.stack([np.roll(pattern, int(round(8 * v)), axis=(0, 1)) for v in z[:, 0]])
    _, _, r_sticky = sticking.neighborhood_average(sticky, np.zeros(4), num=32, sigma=1.0)
    _, _, r_moving = sticking.neighborhood_average(moving, np.zeros(4), num=32, sigma=1.0)
    assert r_sticky > 0.9 and r_moving < 0.3
    strip = sticking.interpolation_slices(sticky, np.zeros(4), np.ones(4), frames=5)
    assert strip.shape == (32, 5, 1) and np.allclose(strip[:, 0], strip[:, -1], atol=0.1)
