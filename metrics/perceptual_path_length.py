"""Perceptual path length (StyleGAN2 paper, Section 3.2), as NVIDIA's ``perceptual_path_length.py``.

For each sample: latents z0, z1 ~ N(0, I) and t ~ U(0, 1) ('full') or t = 0 ('end'); interpolate at t
and t + epsilon (slerp in Z, lerp in W after the mapping network), synthesise both with the same
noise (StyleGAN2's per-pixel noise is drawn at random, shared by the two images of a pair),
optionally crop to the face region (rows 3/8 to 7/8, columns 2/8 to 6/8), average-pool to at most
256x256, scale to [0, 255] and take LPIPS(img_t, img_t+eps) / epsilon^2. The result is the mean of
the distances between their 1st and 99th percentiles.

NVIDIA's five registered variants (``metric_main.py``): ``ppl_zfull``, ``ppl_wfull``, ``ppl_zend``,
``ppl_wend`` (all cropped) and ``ppl2_wend`` (not cropped), 50k samples each, epsilon 1e-4.
"""

import numpy as np
import tensorflow as tf

EPSILON = 1e-4


def slerp(a, b, t):
    """Spherical interpolation of the directions of ``a`` and ``b`` (rows) at ``t`` [N, 1]; unit output."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    d = np.sum(a * b, axis=-1, keepdims=True)
    p = t * np.arccos(np.clip(d, -1, 1))
    c = b - d * a
    c = c / np.linalg.norm(c, axis=-1, keepdims=True)
    out = a * np.cos(p) + c * np.sin(p)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def crop_and_pool(img, crop, resolution):
    """NHWC generator output -> face crop (optional), average-pooled by ``resolution // 256``."""
    if crop:
        if img.shape[1] != img.shape[2]:
            raise ValueError(f'ppl crop needs square images, got {img.shape[1]}x{img.shape[2]}')
        c = img.shape[1] // 8
        img = img[:, c * 3: c * 7, c * 2: c * 6, :]
    factor = resolution // 256
    if factor > 1:
        img = tf.nn.avg_pool2d(img, factor, factor, 'VALID')
    return img


def filtered_mean(dist):
    """Mean of the distances between the 1st (lower) and 99th (higher) percentiles, as NVIDIA."""
    dist = np.asarray(dist, np.float64)
    lo = np.percentile(dist, 1, method='lower')
    hi = np.percentile(dist, 99, method='higher')
    return float(np.extract(np.logical_and(dist >= lo, dist <= hi), dist).mean())


class PPLSampler:
    """Distances of one batch of pairs: ``sampler(z0, z1, t, c, noise_seed)`` -> [N] float64.

    Args:
        G: the generator.
        lpips: a ``metrics.lpips.Lpips``.
        space: 'z' (slerp of z) or 'w' (lerp of w).
        crop: face crop before LPIPS.
        epsilon: the step.
    """

    def __init__(self, G, lpips, space='w', crop=True, epsilon=EPSILON):
        if space not in ('z', 'w'):
            raise ValueError(f"space must be 'z' or 'w', got {space!r}")
        self.G, self.lpips, self.space, self.crop, self.epsilon = G, lpips, space, bool(crop), float(epsilon)
        self.has_noise = bool(G.preset.has_noise)
        self._noise_rng = tf.random.Generator.from_seed(0) if self.has_noise else None
        self._synth = tf.function(self._synth_graph, reduce_retracing=True)

    def _synth_graph(self, ws, noise_seed):
        kwargs = {}
        if self.has_noise:
            self._noise_rng.reset_from_seed(noise_seed)     # The same noise for both images of each pair.
            kwargs = dict(noise_mode='random', noise_rng=self._noise_rng)
        img = self.G.synthesis(ws, **kwargs)
        img = crop_and_pool(img, self.crop, self.G.img_resolution)
        return (img + 1) * (255 / 2)

    def ws(self, z, c, t):
        """(w at t, w at t + epsilon)."""
        if self.space == 'w':
            w0, w1 = np.split(self.G.mapping(np.concatenate([z[0], z[1]]), c2(c)).numpy(), 2)
            t = t[:, None, None]
            return w0 + (w1 - w0) * t, w0 + (w1 - w0) * (t + self.epsilon)
        zt0 = slerp(z[0], z[1], t[:, None]).astype(np.float32)
        zt1 = slerp(z[0], z[1], t[:, None] + self.epsilon).astype(np.float32)
        w = self.G.mapping(np.concatenate([zt0, zt1]), c2(c)).numpy()
        return np.split(w, 2)

    def __call__(self, z0, z1, t, c=None, noise_seed=0):
        wt0, wt1 = self.ws((z0, z1), c, np.asarray(t, np.float64))
        seed = tf.constant(int(noise_seed), tf.int64)
        img0 = self._synth(tf.constant(wt0, tf.float32), seed)
        img1 = self._synth(tf.constant(wt1, tf.float32), seed)
        return self.lpips.distance(img0, img1).numpy().astype(np.float64) / self.epsilon ** 2


def c2(c):
    """Labels for a doubled batch (both halves), or None."""
    return None if c is None else np.concatenate([c, c])


def compute_ppl(G, lpips, num_samples, space='w', sampling='end', crop=True, epsilon=EPSILON, batch_size=8, seed=0,
                labels=None, progress=None):
    """PPL of ``G`` over ``num_samples`` pairs (see the module docstring).

    Args:
        G: the generator.
        lpips: a ``metrics.lpips.Lpips``.
        num_samples: pairs.
        space: 'z' or 'w'.
        sampling: 'full' (t ~ U(0, 1)) or 'end' (t = 0).
        crop: face crop.
        epsilon: interpolation step.
        batch_size: pairs per batch.
        seed: seed of the latents, t and the noise.
        labels: ``labels(n)`` -> [n, c_dim] one-hot, for a conditional G.
        progress: ``progress(done, total)``.
    """
    if sampling not in ('full', 'end'):
        raise ValueError(f"sampling must be 'full' or 'end', got {sampling!r}")
    if num_samples < 1:
        raise ValueError(f'num_samples must be positive, got {num_samples}')
    sampler = PPLSampler(G, lpips, space=space, crop=crop, epsilon=epsilon)
    rng = np.random.default_rng(seed)
    dist = []
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        t = rng.random(n) * (1 if sampling == 'full' else 0)
        z0 = rng.standard_normal([n, G.z_dim]).astype(np.float32)
        z1 = rng.standard_normal([n, G.z_dim]).astype(np.float32)
        c = labels(n) if labels is not None and G.c_dim else None
        dist.append(sampler(z0, z1, t, c, noise_seed=int(rng.integers(0, 2 ** 31 - 1))))
        done += n
        if progress:
            progress(done, num_samples)
    return filtered_mean(np.concatenate(dist))
