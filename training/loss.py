"""GAN losses of the reference's StyleGAN2Loss: non-saturating logistic loss and R1."""

import math

import numpy as np

import tensorflow as tf


def generator_loss(fake_logits):
    """Non-saturating loss of G: softplus(-D(G(z))), per sample."""
    return tf.nn.softplus(-fake_logits)


def discriminator_loss(real_logits, fake_logits):
    """Logistic loss of D: softplus(D(G(z))) + softplus(-D(x)), per sample."""
    return tf.nn.softplus(fake_logits) + tf.nn.softplus(-real_logits)


def r1_penalty(discriminate, real_images):
    """(per-sample R1 || d sum(D(x)) / dx ||^2, D's logits of the real images). Differentiable."""
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        logits = discriminate(real_images)
        total = tf.reduce_sum(logits)
    grads = tape.gradient(total, real_images)
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]), logits


def blur_radius(max_sigma):
    """Filter radius that covers every sigma up to ``max_sigma``: floor(3 sigma), as the reference."""
    if not (max_sigma >= 0 and math.isfinite(max_sigma)):
        raise ValueError(f'blur sigma must be a finite number >= 0, got {max_sigma!r}')
    return max(int(math.floor(3 * max_sigma)), 1)


def blur_images(images, sigma, max_radius=None):
    """The StyleGAN3-R blur of the images D sees, as the reference does it.

    Taps exp2(-(t / sigma)^2) for |t| <= floor(3 sigma), normalised, separable, with zero
    padding (same size out). ``sigma`` may be a tensor, then ``max_radius`` (static) must cover
    its largest value (``blur_radius(largest sigma)``); a number sets it itself. sigma below
    1/3 (no taps) = identity.
    """
    if max_radius is None:
        if tf.is_tensor(sigma):
            raise ValueError('max_radius: give blur_radius(largest sigma) when sigma is a tensor')
        max_radius = blur_radius(float(sigma))
    sigma = tf.convert_to_tensor(sigma, tf.float32)
    size = tf.floor(sigma * 3)
    taps = tf.range(-max_radius, max_radius + 1, dtype=tf.float32)
    kernel = tf.where(tf.abs(taps) <= size, tf.pow(2.0, -tf.square(taps / tf.maximum(sigma, 1e-8))), 0.0)
    kernel = kernel / tf.reduce_sum(kernel)
    channels = images.shape[-1]
    kx = tf.tile(kernel[tf.newaxis, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
    ky = tf.tile(kernel[:, tf.newaxis, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
    padded = tf.pad(images, [[0, 0], [max_radius, max_radius], [max_radius, max_radius], [0, 0]])
    blurred = tf.nn.depthwise_conv2d(tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], 'VALID'), ky, [1, 1, 1, 1],
                                     'VALID')
    return tf.where(size > 0, blurred, images)


def path_length_penalty(synthesize, ws, pl_mean, decay, draw_noise=None):
    """StyleGAN2's path-length penalty per sample, as the reference's Gpl phase.

    J^T y for a random image-space y ~ N(0, 1) / sqrt(H W) (``draw_noise(shape)`` draws the N(0, 1)
    part, default TF's global generator): lengths = sqrt(mean over ws of ||J^T y||^2); the running
    mean ``pl_mean`` (a variable) moves towards their mean by ``decay``; returns (lengths - new mean)^2
    with the new mean *not* detached, as NVIDIA's. Differentiable w.r.t. the generator's weights.
    """
    with tf.GradientTape() as tape:
        tape.watch(ws)
        img = synthesize(ws)
        shape = tf.shape(img)
        noise = draw_noise(shape) if draw_noise is not None else tf.random.normal(shape)
        noise = noise / np.sqrt(float(img.shape[1] * img.shape[2]))
        total = tf.reduce_sum(img * noise)
    grads = tape.gradient(total, ws)
    lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))
    mean = pl_mean + (tf.reduce_mean(lengths) - pl_mean) * decay
    pl_mean.assign(tf.stop_gradient(mean))
    return tf.square(lengths - mean)
