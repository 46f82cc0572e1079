"""afgan_tf.training.loss: losses, R1, the StyleGAN3-R blur, path length."""

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf.training import loss

from conftest import small_gan


def test_loss_formulas():
    real, fake = tf.constant([2.0, -1.0]), tf.constant([0.5, -3.0])
    assert np.allclose(loss.generator_loss(fake), np.log1p(np.exp(-fake.numpy())))
    expected = np.log1p(np.exp(fake.numpy())) + np.log1p(np.exp(-real.numpy()))
    assert np.allclose(loss.discriminator_loss(real, fake), expected)


def test_r1_known_gradient():
    a = tf.constant(np.random.default_rng(0).standard_normal([1, 4, 4, 2]).astype(np.float32))
    linear_d = lambda x: tf.reduce_sum(x * a, axis=[1, 2, 3])[:, None]     # dD/dx = a for every sample.
    r1, logits = loss.r1_penalty(linear_d, tf.ones([3, 4, 4, 2]))
    assert np.allclose(r1, np.sum(a.numpy() ** 2), rtol=1e-5)
    assert np.allclose(logits, np.sum(a.numpy()), rtol=1e-5) and logits.shape == (3, 1)


def test_blur_matches_reference_taps():
    img = np.zeros([1, 41, 41, 1], np.float32)
    img[0, 20, 20, 0] = 1
    assert np.array_equal(loss.blur_images(img, 0.0), img)
    out = loss.blur_images(img, 2.0).numpy()[0, :, :, 0]
    t = np.arange(-6, 7)
    taps = np.exp2(-(t / 2.0) ** 2)
    taps /= taps.sum()
    assert np.allclose(out[14:27, 14:27], np.outer(taps, taps), atol=1e-6)
    assert np.isclose(out.sum(), 1, atol=1e-5)


def test_blur_wider_than_ten_sigma_is_not_truncated():
    """sigma 20 needs radius 60 (the old fixed radius 30 cut the kernel); the GAN sizes it from its schedule."""
    img = np.zeros([1, 131, 131, 1], np.float32)
    img[0, 65, 65, 0] = 1
    out = loss.blur_images(img, 20.0).numpy()[0, :, :, 0]
    t = np.arange(-60, 61)
    taps = np.exp2(-(t / 20.0) ** 2)
    taps /= taps.sum()
    assert np.allclose(out[5:126, 5:126], np.outer(taps, taps), atol=1e-7)
    assert loss.blur_radius(20.0) == 60 and small_gan(blur_init_sigma=20, blur_fade_kimg=1).blur_radius == 60
    with pytest.raises(ValueError, match='blur sigma'):
        loss.blur_radius(float('nan'))


def test_path_length_penalty_formula():
    # synthesize(ws) = ws . a (a linear "generator"): J^T y is known in closed form.
    a = tf.constant(np.random.default_rng(0).standard_normal([3, 4]).astype(np.float32))
    synth = lambda ws: tf.einsum('nkd,kd->n', ws, a)[:, None, None, None] * tf.ones([1, 2, 2, 1])
    ws = tf.ones([5, 3, 4])
    pl_mean = tf.Variable(0.0)
    rng = tf.random.Generator.from_seed(0)
    pen = loss.path_length_penalty(synth, ws, pl_mean, 0.5, rng.normal).numpy()
    noise = tf.random.Generator.from_seed(0).normal([5, 2, 2, 1]).numpy() / 2
    s = noise.sum(axis=(1, 2, 3))                                    # J^T y = a * sum(y)
    lengths = np.sqrt(np.mean(np.sum((s[:, None, None] * a.numpy()[None]) ** 2, 2), 1))
    mean = 0.5 * lengths.mean()
    assert np.allclose(pen, (lengths - mean) ** 2, rtol=1e-5)
    assert float(pl_mean.numpy()) == pytest.approx(mean, rel=1e-5)
