"""ADA's ``bgc`` augmentation pipeline (Karras et al. 2020, "Training GANs with Limited Data") in core TF.

As NVIDIA's ``training/augment.py``: every transformation is applied to each image with
probability ``p`` times its multiplier (1 for each of the ``bgc`` ones):
- pixel blitting: x-flip, 90-degree rotations, integer translation (up to 0.125 of the image);
- general geometry: isotropic scaling (log2 std 0.2), pre/post rotation (full circle, the two
  together with probability p), anisotropic scaling (log2 std 0.2), fractional translation
  (std 0.125);
- colour: brightness (std 0.2), contrast (log2 std 0.5), luma flip, hue rotation (full circle),
  saturation (log2 std 1); grey images get the luma-axis part only, as the reference.
The geometric transforms are composed into one inverse matrix per image and executed once:
reflect padding, 2x upsampling with the ``sym6`` wavelet low-pass, bilinear sampling (zeros
outside, exact gradients: a gather, no approximate adjoint), 2x downsampling with the same
filter. Images are NHWC; everything is differentiable w.r.t. the images.

Difference from the reference, with identical results: the reflect padding is the largest the
reference can use (image size - 1 on each side), static, instead of a per-batch margin, so the
graph has static shapes.
"""

import numpy as np
import tensorflow as tf

from afgan_tf import ops

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

GEOMETRIC = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac')
BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
           brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)


# ---------------------------------------------------------------------------------------------
# Batched homogeneous matrices ([N, 3, 3] / [N, 4, 4]) from per-sample parameters [N].

def _matrix(rows):
    """rows: nested lists of scalars or [N] tensors -> [N, R, C]."""
    ref = next(e for row in rows for e in row if tf.is_tensor(e))
    elems = [tf.broadcast_to(tf.cast(e, tf.float32), tf.shape(ref)) for row in rows for e in row]
    return tf.reshape(tf.stack(elems, axis=-1), [-1, len(rows), len(rows[0])])


def translate2d(tx, ty):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(theta):
    return _matrix([[tf.cos(theta), -tf.sin(theta), 0], [tf.sin(theta), tf.cos(theta), 0], [0, 0, 1]])


def translate3d(t):
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]])


def scale3d(s):
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]])


def rotate3d(v, theta):
    vx, vy, vz = (float(a) for a in v[:3])
    s, c = tf.sin(theta), tf.cos(theta)
    cc = 1 - c
    return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                    [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                    [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                    [0, 0, 0, 1]])


# ---------------------------------------------------------------------------------------------
# Execution helpers.

def grid_sample_bilinear(images, coords):
    """Bilinear sampling of NHWC ``images`` at pixel coordinates ``coords`` [N, Ho, Wo, (x, y)]
    (integer = pixel centre); zeros outside. Exact gradients w.r.t. ``images`` (gathers)."""
    n, h, w, c = images.shape
    flat = tf.reshape(images, [-1, h * w, c])
    x, y = coords[..., 0], coords[..., 1]
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)

    def tap(ix, iy):
        valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        idx = tf.clip_by_value(iy, 0, h - 1) * w + tf.clip_by_value(ix, 0, w - 1)
        v = tf.gather(flat, tf.reshape(idx, [tf.shape(idx)[0], -1]), batch_dims=1)
        v = tf.reshape(v, tf.concat([tf.shape(idx), [c]], 0))
        return v * tf.cast(valid, images.dtype)[..., None]
    return (tap(x0, y0) * (1 - fx) * (1 - fy) + tap(x0 + 1, y0) * fx * (1 - fy) +
            tap(x0, y0 + 1) * (1 - fx) * fy + tap(x0 + 1, y0 + 1) * fx * fy)


class _Random:
    """Random draws from a ``tf.random.Generator`` (checkpointable state) or TF's global RNG."""

    def __init__(self, rng=None):
        self.rng = rng

    def uniform(self, shape):
        return self.rng.uniform(shape) if self.rng is not None else tf.random.uniform(shape)

    def normal(self, shape):
        return self.rng.normal(shape) if self.rng is not None else tf.random.normal(shape)

    def gate(self, prob, shape, value, identity):
        """``value`` where uniform < prob, else ``identity`` (per sample)."""
        return tf.where(self.uniform(shape) < prob, value, identity)


class AugmentPipe:
    """ADA augmentation with probability multiplier ``p`` (a scalar tensor/variable or float).

    Args:
        **multipliers: per-transformation probability multipliers (default: ``bgc``, all 1);
            names as the reference (xflip, rotate90, xint, scale, rotate, aniso, xfrac,
            brightness, contrast, lumaflip, hue, saturation).
    """

    def __init__(self, xint_max=0.125, scale_std=0.2, rotate_max=1.0, aniso_std=0.2, xfrac_std=0.125,
                 brightness_std=0.2, contrast_std=0.5, hue_max=1.0, saturation_std=1.0, **multipliers):
        unknown = set(multipliers) - set(BGC)
        if unknown:
            raise ValueError(f'unknown augmentation(s) {sorted(unknown)}; known: {sorted(BGC)}')
        self.mult = {k: float(multipliers.get(k, v)) for k, v in BGC.items()}
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.hz_geom = np.asarray(SYM6, np.float32) / np.float32(np.sum(SYM6))     # setup_filter: unit DC gain

    def geometry_matrix(self, n, width, height, p, rng=None):
        """The inverse transform G_inv [N, 3, 3] (output pixel -> input pixel, origin at the centre)."""
        m, G, r = self.mult, tf.eye(3, batch_shape=[n]), _Random(rng)
        zeros, ones = tf.zeros([n]), tf.ones([n])
        if m['xflip'] > 0:
            i = r.gate(m['xflip'] * p, [n], tf.floor(r.uniform([n]) * 2), zeros)
            G = G @ scale2d(1 / (1 - 2 * i), ones)
        if m['rotate90'] > 0:
            i = r.gate(m['rotate90'] * p, [n], tf.floor(r.uniform([n]) * 4), zeros)
            G = G @ rotate2d(np.pi / 2 * i)
        if m['xint'] > 0:
            t = r.gate(m['xint'] * p, [n, 1], (r.uniform([n, 2]) * 2 - 1) * self.xint_max, tf.zeros([n, 2]))
            G = G @ translate2d(-tf.round(t[:, 0] * width), -tf.round(t[:, 1] * height))
        if m['scale'] > 0:
            s = r.gate(m['scale'] * p, [n], tf.pow(2.0, r.normal([n]) * self.scale_std), ones)
            G = G @ scale2d(1 / s, 1 / s)
        p_rot = 1 - tf.sqrt(tf.clip_by_value(1 - m['rotate'] * p, 0, 1))      # P(pre or post) = p
        if m['rotate'] > 0:
            theta = r.gate(p_rot, [n], (r.uniform([n]) * 2 - 1) * np.pi * self.rotate_max, zeros)
            G = G @ rotate2d(theta)                                           # rotate2d_inv(-theta)
        if m['aniso'] > 0:
            s = r.gate(m['aniso'] * p, [n], tf.pow(2.0, r.normal([n]) * self.aniso_std), ones)
            G = G @ scale2d(1 / s, s)
        if m['rotate'] > 0:
            theta = r.gate(p_rot, [n], (r.uniform([n]) * 2 - 1) * np.pi * self.rotate_max, zeros)
            G = G @ rotate2d(theta)
        if m['xfrac'] > 0:
            t = r.gate(m['xfrac'] * p, [n, 1], r.normal([n, 2]) * self.xfrac_std, tf.zeros([n, 2]))
            G = G @ translate2d(-t[:, 0] * width, -t[:, 1] * height)
        return G

    def color_matrix(self, n, channels, p, rng=None):
        """The colour transform C [N, 4, 4] (homogeneous RGB)."""
        m, C, r = self.mult, tf.eye(4, batch_shape=[n]), _Random(rng)
        zeros, ones = tf.zeros([n]), tf.ones([n])
        v = np.array([1, 1, 1, 0], np.float32) / np.sqrt(3)                 # Luma axis.
        vv = tf.constant(np.outer(v, v), tf.float32)
        if m['brightness'] > 0:
            b = r.gate(m['brightness'] * p, [n], r.normal([n]) * self.brightness_std, zeros)
            C = translate3d(b) @ C
        if m['contrast'] > 0:
            c = r.gate(m['contrast'] * p, [n], tf.pow(2.0, r.normal([n]) * self.contrast_std), ones)
            C = scale3d(c) @ C
        if m['lumaflip'] > 0:
            i = r.gate(m['lumaflip'] * p, [n], tf.floor(r.uniform([n]) * 2), zeros)
            C = (tf.eye(4) - 2 * vv * i[:, None, None]) @ C                  # Householder reflection.
        if m['hue'] > 0 and channels > 1:
            theta = r.gate(m['hue'] * p, [n], (r.uniform([n]) * 2 - 1) * np.pi * self.hue_max, zeros)
            C = rotate3d(v, theta) @ C
        if m['saturation'] > 0 and channels > 1:
            s = r.gate(m['saturation'] * p, [n], tf.pow(2.0, r.normal([n]) * self.saturation_std), ones)
            C = (vv + (tf.eye(4) - vv) * s[:, None, None]) @ C
        return C

    def apply_geometry(self, images, G_inv):
        """Executes G_inv (see ``geometry_matrix``) with the reference's anti-aliased resampling."""
        n, h, w, c = images.shape
        hz_pad = self.hz_geom.shape[0] // 4
        x = tf.pad(images, [[0, 0], [h - 1, h - 1], [w - 1, w - 1], [0, 0]], mode='REFLECT')
        x = ops.upsample2d(x, self.hz_geom, up=2)
        # Pixel-centred coordinates of the 2x image, shifted half a pixel by the even filter.
        up_inv = translate2d(-0.5 * tf.ones([1]), -0.5 * tf.ones([1])) @ scale2d(2 * tf.ones([1]), 2 * tf.ones([1]))
        up = scale2d(0.5 * tf.ones([1]), 0.5 * tf.ones([1])) @ translate2d(0.5 * tf.ones([1]), 0.5 * tf.ones([1]))
        G = up_inv @ G_inv @ up
        ho, wo = (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2
        hi, wi = x.shape[1], x.shape[2]
        ys, xs = np.meshgrid(np.arange(ho) - (ho - 1) / 2, np.arange(wo) - (wo - 1) / 2, indexing='ij')
        grid = tf.constant(np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3).astype(np.float32))   # [P, 3]
        src = tf.einsum('nij,pj->npi', G[:, :2, :], grid)                    # [N, P, 2]
        src = src + tf.constant([(wi - 1) / 2, (hi - 1) / 2], tf.float32)
        x = grid_sample_bilinear(x, tf.reshape(src, [-1, ho, wo, 2]))
        return ops.downsample2d(x, self.hz_geom, down=2, padding=-hz_pad * 2, flip_filter=True)

    @staticmethod
    def apply_color(images, C):
        if images.shape[-1] == 3:
            return tf.einsum('nij,nhwj->nhwi', C[:, :3, :3], images) + C[:, None, None, :3, 3]
        if images.shape[-1] == 1:
            Cm = tf.reduce_mean(C[:, :3, :], axis=1)                          # [N, 4]
            return images * tf.reduce_sum(Cm[:, :3], -1)[:, None, None, None] + Cm[:, None, None, 3:]
        raise ValueError(f'images: augmentation needs RGB (3) or grey (1) channels, got {images.shape[-1]}')

    def __call__(self, images, p, rng=None):
        """Augments NHWC ``images`` with probability multiplier ``p``; p = 0 returns ``images`` unchanged.
        ``rng``: a ``tf.random.Generator`` (default: TF's global RNG)."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or None in images.shape[1:]:
            raise ValueError(f'images: expected NHWC with static size, got shape {images.shape}')
        p = tf.cast(p, tf.float32)
        n, h, w, c = tf.shape(images)[0], images.shape[1], images.shape[2], images.shape[3]
        if c not in (1, 3):
            raise ValueError(f'images: augmentation needs RGB (3) or grey (1) channels, got {c}')

        geometric = any(self.mult[k] > 0 for k in GEOMETRIC)
        colour = any(self.mult[k] > 0 for k in ('brightness', 'contrast', 'lumaflip')) or \
            (c > 1 and any(self.mult[k] > 0 for k in ('hue', 'saturation')))

        def augment():      # Skips what the multipliers switch off, as the reference does.
            x = self.apply_geometry(images, self.geometry_matrix(n, w, h, p, rng)) if geometric else images
            return self.apply_color(x, self.color_matrix(n, c, p, rng)) if colour else x
        return tf.cond(p > 0, augment, lambda: tf.identity(images))


def ada_adjust(p, real_sign_mean, target, batch_size, interval, ada_kimg):
    """The reference's ADA update: p += sign(E[sign(D(x))] - target) * batch * interval / (ada_kimg * 1000), p >= 0."""
    adjust = np.sign(real_sign_mean - target) * (batch_size * interval) / (ada_kimg * 1000)
    return max(float(p) + float(adjust), 0.0)
