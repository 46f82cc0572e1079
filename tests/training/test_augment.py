"""afgan_tf.training.augment: the ADA bgc pipeline and its adaptation rule."""

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf.training import augment


def _images(channels=3, n=2, size=16, seed=0, smooth=False):
    rng = np.random.default_rng(seed)
    if not smooth:
        return tf.constant(rng.uniform(-1, 1, [n, size, size, channels]).astype(np.float32))
    t = np.arange(size) / size
    phase = rng.uniform(0, 2 * np.pi, [n, 1, 1, channels])
    img = 0.9 * np.sin(2 * np.pi * (t[None, :, None, None] + 2 * t[None, None, :, None]) + phase)
    return tf.constant(img.astype(np.float32))


def test_augment_p0_is_identity():
    x = _images()
    assert np.array_equal(augment.AugmentPipe()(x, 0.0).numpy(), x.numpy())


@pytest.mark.parametrize('name', sorted(augment.BGC))
@pytest.mark.parametrize('channels', [1, 3])
def test_each_augmentation_keeps_shape_range_and_is_differentiable(name, channels):
    pipe = augment.AugmentPipe(**{k: (1 if k == name else 0) for k in augment.BGC})
    x = _images(channels, n=8, smooth=True)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = pipe(x, 1.0, rng=tf.random.Generator.from_seed(1))
        total = tf.reduce_sum(y * tf.range(8, dtype=tf.float32)[:, None, None, None])
    g = tape.gradient(total, x)
    assert y.shape == x.shape
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(g.numpy()))
    assert np.max(np.abs(g.numpy())) > 0
    colour = name in ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')
    if colour and channels == 1 and name in ('hue', 'saturation'):
        assert np.array_equal(y.numpy(), x.numpy())        # RGB-only transforms leave grey images alone.
    elif not colour:
        # Resampling keeps values within the input range (up to the filter's small over/undershoot).
        assert np.abs(y.numpy()).max() <= 1.1 * np.abs(x.numpy()).max()
    assert not np.allclose(y.numpy(), x.numpy()) or (colour and channels == 1 and name in ('hue', 'saturation'))


def test_integer_translation_moves_content_exactly():
    pipe = augment.AugmentPipe()
    x = _images(3)
    ones = tf.ones([2])
    assert np.max(np.abs(pipe.apply_geometry(x, tf.eye(3, batch_shape=[2])).numpy() - x.numpy())) < 1e-5
    y = pipe.apply_geometry(x, augment.translate2d(3 * ones, -2 * ones)).numpy()     # out[y, x] = in[y - 2, x + 3]
    assert np.max(np.abs(y[:, 4:14, 2:10] - x.numpy()[:, 2:12, 5:13])) < 1e-5
    # The pipeline with only xint, p=1: every image is an exact integer shift of the input (interior).
    pipe = augment.AugmentPipe(**{k: (1 if k == 'xint' else 0) for k in augment.BGC})
    smooth = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    y = pipe(smooth, 1.0, rng=tf.random.Generator.from_seed(3)).numpy()
    for i in range(4):
        errs = [np.max(np.abs(np.roll(smooth.numpy()[i], (dy, dx), (0, 1))[3:13, 3:13] - y[i, 3:13, 3:13]))
                for dy in range(-2, 3) for dx in range(-2, 3)]
        assert min(errs) < 1e-5


def test_colour_transforms_exact():
    x = _images(3)
    C = augment.translate3d(tf.constant([0.25, -0.5]))              # brightness
    assert np.allclose(augment.AugmentPipe.apply_color(x, C), x.numpy() + np.array([0.25, -0.5])[:, None, None, None],
                       atol=1e-6)
    grey = _images(1)
    C = augment.scale3d(tf.constant([2.0, 0.5]))                    # contrast on grey: scales
    assert np.allclose(augment.AugmentPipe.apply_color(grey, C), grey.numpy() * np.array([2, 0.5])[:, None, None, None],
                       atol=1e-6)


def test_ada_adjust_rule():
    # sign mean above the target: p grows by batch * interval / (ada_kimg * 1000); never below 0.
    assert augment.ada_adjust(0.1, 0.9, 0.6, 32, 4, 500) == pytest.approx(0.1 + 32 * 4 / 500000)
    assert augment.ada_adjust(0.0, 0.1, 0.6, 32, 4, 500) == 0.0
