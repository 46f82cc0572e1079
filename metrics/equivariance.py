"""The paper's equivariance metrics EQ-T, EQ-T_frac and EQ-R (Appendix E), as NVIDIA's
``metrics/equivariance.py`` defines them, for NHWC images.

Per batch (one random transform per batch, as the reference draws it): generate the
reference image with the identity input transform, generate again with the transform
applied to the synthesis input, bring the reference into the same frame with the exact
operator of the appendix (integer shift / windowed-sinc fractional shift / band-limited
rotation, plus the pseudo-rotation of the generated image for EQ-R), and accumulate the
masked squared error and the mask size in float64 over all samples. PSNR = 20 log10(2) -
10 log10(MSE) (images span [-1, 1], so 2 is the peak-to-peak range).
"""

import numpy as np
import tensorflow as tf

from afgan_tf import ops


def sinc(x):
    x = np.asarray(x, np.float64)
    y = np.abs(x * np.pi)
    return np.where(y < 1e-30, 1.0, np.sin(y) / np.maximum(y, 1e-30))


def lanczos_window(x, a):
    x = np.abs(np.asarray(x, np.float64)) / a
    return np.where(x < 1, sinc(x), 0.0)


def rotation_matrix(angle):
    """The reference's 3x3 rotation (radians): [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]]."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float32)


def translation_matrix(t):
    """The input transform for translating the output by ``t`` (fractions of the image): I with -t."""
    m = np.eye(3, dtype=np.float32)
    m[:2, 2] = -np.asarray(t, np.float32)
    return m


# ---------------------------------------------------------------------------------------------
# Operators on NHWC numpy images; each returns (image, mask).

def apply_integer_translation(x, tx, ty):
    """Shift by (round(tx W), round(ty H)) pixels; uncovered pixels are 0 and masked out."""
    x = np.asarray(x)
    _, h, w, _ = x.shape
    ix, iy = int(np.round(np.float32(tx * w))), int(np.round(np.float32(ty * h)))
    z, m = np.zeros_like(x), np.zeros_like(x)
    if abs(ix) < w and abs(iy) < h:
        z[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = \
            x[:, max(-iy, 0):h + min(-iy, 0), max(-ix, 0):w + min(-ix, 0)]
        m[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = 1
    return z, m


def apply_fractional_translation(x, tx, ty, a=3):
    """Shift by (tx W, ty H) pixels with a separable Lanczos-windowed sinc of support 2a."""
    x = np.asarray(x, np.float32)
    _, h, w, _ = x.shape
    tx, ty = np.float32(tx * w), np.float32(ty * h)
    ix, iy = int(np.floor(tx)), int(np.floor(ty))
    fx, fy = tx - ix, ty - iy
    b = a - 1
    z = np.zeros_like(x)
    zx0, zy0 = max(ix - b, 0), max(iy - b, 0)
    zx1, zy1 = min(ix + a, 0) + w, min(iy + a, 0) + h
    if zx0 < zx1 and zy0 < zy1:
        taps = np.arange(a * 2) - b
        filter_x = (sinc(taps - fx) * sinc((taps - fx) / a))[np.newaxis, :]
        filter_y = (sinc(taps - fy) * sinc((taps - fy) / a))[:, np.newaxis]
        y = filter2d(x, filter_x / filter_x.sum(), padding=[b, a, 0, 0])
        y = filter2d(y, filter_y / filter_y.sum(), padding=[0, 0, b, a]).numpy()
        z[:, zy0:zy1, zx0:zx1] = y[:, max(b - iy, 0):h + b + a + min(-iy - a, 0),
                                    max(b - ix, 0):w + b + a + min(-ix - a, 0)]
    m = np.zeros_like(x)
    mx0, my0 = max(ix + a, 0), max(iy + a, 0)
    mx1, my1 = min(ix - b, 0) + w, min(iy - b, 0) + h
    if mx0 < mx1 and my0 < my1:
        m[:, my0:my1, mx0:mx1] = 1
    return z, m


def filter2d(x, f, padding=0):
    """The reference's ``upfirdn2d.filter2d``: same-size convolution with ``f`` plus extra ``padding``."""
    px0, px1, py0, py1 = ops.parse_padding(padding)
    fw, fh = ops.filter_size(np.asarray(f))
    return ops.upfirdn2d(x, np.asarray(f, np.float32),
                         padding=[px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2])


def construct_affine_bandlimit_filter(mat, a=3, amax=16, aflt=64, up=4, cutoff_in=1, cutoff_out=1):
    """2-D FIR filter band-limiting both the input and the output grid of the affine ``mat``."""
    if not a <= amax < aflt:
        raise ValueError(f'need a <= amax < aflt, got a={a}, amax={amax}, aflt={aflt}')
    mat = np.asarray(mat, np.float64)
    taps = np.roll((np.arange(aflt * up * 2 - 1) + 1) / up - aflt, 1 - aflt * up)
    yi, xi = np.meshgrid(taps, taps, indexing='ij')
    xo = xi * mat[0, 0] + yi * mat[0, 1]
    yo = xi * mat[1, 0] + yi * mat[1, 1]
    fi = sinc(xi * cutoff_in) * sinc(yi * cutoff_in)           # Two oriented 2-D sincs, convolved.
    fo = sinc(xo * cutoff_out) * sinc(yo * cutoff_out)
    f = np.fft.ifftn(np.fft.fftn(fi) * np.fft.fftn(fo)).real
    wi = lanczos_window(xi, a) * lanczos_window(yi, a)          # Two oriented Lanczos windows, convolved.
    wo = lanczos_window(xo, a) * lanczos_window(yo, a)
    w = np.fft.ifftn(np.fft.fftn(wi) * np.fft.fftn(wo)).real
    f = f * w
    c = (aflt - amax) * up
    f = np.roll(f, [aflt * up - 1] * 2, axis=(0, 1))[c:-c, c:-c]
    f = np.pad(f, [[0, 1], [0, 1]]).reshape(amax * 2, up, amax * 2, up)
    f = f / f.sum(axis=(0, 2), keepdims=True) / (up ** 2)
    return f.reshape(amax * 2 * up, amax * 2 * up)[:-1, :-1].astype(np.float32)


def _grid_sample(y, grid, mode):
    """torch's grid_sample(align_corners=False, padding_mode='zeros') for NHWC ``y`` and grid [N, H, W, 2]."""
    _, hy, wy, _ = y.shape
    gx = ((grid[..., 0] + 1) * wy - 1) / 2
    gy = ((grid[..., 1] + 1) * hy - 1) / 2
    batch = np.arange(y.shape[0])[:, None, None]

    def tap(ix, iy):
        valid = (ix >= 0) & (ix < wy) & (iy >= 0) & (iy < hy)
        v = y[batch, np.clip(iy, 0, hy - 1), np.clip(ix, 0, wy - 1)]
        return v * valid[..., None]
    if mode == 'nearest':
        return tap(np.rint(gx).astype(np.int64), np.rint(gy).astype(np.int64))
    x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    wx, wy_ = (gx - x0)[..., None], (gy - y0)[..., None]
    return (tap(x0, y0) * (1 - wx) * (1 - wy_) + tap(x0 + 1, y0) * wx * (1 - wy_) +
            tap(x0, y0 + 1) * (1 - wx) * wy_ + tap(x0 + 1, y0 + 1) * wx * wy_)


def apply_affine_transformation(x, mat, up=4, **filter_kwargs):
    """Resample NHWC ``x`` under the affine ``mat`` with the band-limiting filter (4x oversampled)."""
    x = np.asarray(x, np.float32)
    n, h, w, _ = x.shape
    f = construct_affine_bandlimit_filter(mat, up=up, **filter_kwargs)
    p = f.shape[0] // 2
    theta = np.linalg.inv(np.asarray(mat, np.float64))
    theta[:2, 2] *= 2
    theta[0, 2] += 1 / up / w
    theta[1, 2] += 1 / up / h
    theta[0, :] *= w / (w + p / up * 2)
    theta[1, :] *= h / (h + p / up * 2)
    xs = (np.arange(w) * 2 + 1) / w - 1                           # affine_grid, align_corners=False.
    ys = (np.arange(h) * 2 + 1) / h - 1
    gx, gy = np.meshgrid(xs, ys)
    base = np.stack([gx, gy, np.ones_like(gx)], -1)               # [H, W, 3]
    grid = np.broadcast_to((base @ theta[:2, :3].T)[np.newaxis], [n, h, w, 2])
    y = ops.upsample2d(x, f, up=up, padding=p).numpy()
    z = _grid_sample(y, grid, 'bilinear')
    m = np.zeros_like(y)
    c = p * 2 + 1
    m[:, c:-c, c:-c] = 1
    return z.astype(np.float32), _grid_sample(m, grid, 'nearest').astype(np.float32)


def apply_fractional_rotation(x, angle, a=3, **filter_kwargs):
    """R_alpha of Appendix E.3: band-limited rotation by ``angle`` radians."""
    return apply_affine_transformation(x, rotation_matrix(angle), a=a, amax=a * 2, **filter_kwargs)


def apply_fractional_pseudo_rotation(x, angle, a=3, **filter_kwargs):
    """R*_alpha: the frequency content of a rotation by ``angle`` without rotating."""
    f = construct_affine_bandlimit_filter(rotation_matrix(-angle), a=a, amax=a * 2, up=1, **filter_kwargs)
    y = filter2d(np.asarray(x, np.float32), f).numpy()
    m = np.zeros_like(y)
    c = f.shape[0] // 2
    m[:, c:-c, c:-c] = 1
    return y, m


# ---------------------------------------------------------------------------------------------
# The metric.

def compute_equivariance(G, num_samples, batch_size=4, translate_max=0.125, rotate_max=1.0, eqt_int=False,
                         eqt_frac=False, eqr=False, seed=0, labels=None, progress=None):
    """PSNRs (dB) of the selected metrics, in the order EQ-T, EQ-T_frac, EQ-R, as a dict.

    Args:
        G: a StyleGAN3 ``Generator`` (its synthesis takes a ``transform``).
        num_samples: number of generated samples (rounded up to whole batches, as the reference).
        batch_size: samples per batch; one random transform is drawn per batch.
        translate_max: largest translation, as a fraction of the image size.
        rotate_max: largest rotation, in units of pi.
        labels: ``callable(n) -> [n, c_dim]`` for conditional generators.
        progress: ``callable(done, total)`` or None.
    """
    if not (eqt_int or eqt_frac or eqr):
        raise ValueError('select at least one of eqt_int, eqt_frac, eqr')
    if not G.preset.accepts_transform:
        raise ValueError('equivariance metrics need a StyleGAN3 generator (its synthesis input takes a transform); '
                         f'got {getattr(G, "architecture", type(G).__name__)!r}')
    rng = np.random.default_rng(seed)
    synth = tf.function(lambda ws, m: G.synthesis(ws, transform=m, noise_mode='const'), reduce_retracing=True)
    mapping = tf.function(lambda z, c: G.mapping(z, c))
    res = G.img_resolution
    identity = np.eye(3, dtype=np.float32)
    sums = None
    for start in range(0, num_samples, batch_size):
        if progress:
            progress(start, num_samples)
        z = rng.standard_normal([batch_size, G.z_dim]).astype(np.float32)
        c = labels(batch_size) if (labels is not None and G.c_dim) else None
        ws = mapping(z, c)
        orig = synth(ws, identity).numpy()
        s = []
        if eqt_int:
            t = (rng.uniform(size=2).astype(np.float32) * 2 - 1) * translate_max
            t = np.round(t * res) / res
            img = synth(ws, translation_matrix(t)).numpy()
            ref, mask = apply_integer_translation(orig, t[0], t[1])
            s += [np.square(ref - img) * mask, mask]
        if eqt_frac:
            t = (rng.uniform(size=2).astype(np.float32) * 2 - 1) * translate_max
            img = synth(ws, translation_matrix(t)).numpy()
            ref, mask = apply_fractional_translation(orig, t[0], t[1])
            s += [np.square(ref - img) * mask, mask]
        if eqr:
            angle = np.float32((rng.uniform() * 2 - 1) * (rotate_max * np.pi))
            img = synth(ws, rotation_matrix(-angle)).numpy()
            ref, ref_mask = apply_fractional_rotation(orig, angle)
            pseudo, pseudo_mask = apply_fractional_pseudo_rotation(img, angle)
            mask = ref_mask * pseudo_mask
            s += [np.square(ref - pseudo) * mask, mask]
        s = np.array([np.sum(v, dtype=np.float64) for v in s])
        sums = s if sums is None else sums + s
    if progress:
        progress(num_samples, num_samples)
    mses = sums[0::2] / sums[1::2]
    psnrs = np.log10(2) * 20 - np.log10(mses) * 10
    names = [n for n, on in (('eqt_int', eqt_int), ('eqt_frac', eqt_frac), ('eqr', eqr)) if on]
    return dict(zip(names, (float(p) for p in psnrs)))
