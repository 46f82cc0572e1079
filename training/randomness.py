"""Every random draw of a training step, from one replaceable source.

``GAN.train_step`` draws nothing itself: the latents of each phase, the labels of generated
images, StyleGAN2's style-mixing cutoff and latents, its per-pixel noise inputs, the path-length
noise and the augmentation's draws all come from ``GAN.source``. By default that is a
``RandomSource`` over the run's ``tf.random.Generator`` (checkpointed, so a resumed run draws
what it would have drawn). ``RecordedSource`` feeds stored arrays instead: the replay of NVIDIA's
recorded training steps (``afgan_tf.training.replay``) uses it, so the step's maths is the one
``afgan-train`` runs, with no branch of its own.

Each method takes the name of the phase that draws (NVIDIA's: 'Gmain', 'Greg', 'Gboth', 'Dmain',
'Dreg', 'Dboth') and returns tensors; shapes are NHWC where images are concerned.
"""

import numpy as np
import tensorflow as tf


class RandomSource:
    """The default source: draws from ``rng`` (a ``tf.random.Generator``)."""

    def __init__(self, rng):
        self.rng = rng

    def latents(self, phase, batch, z_dim, offset=0):
        """z of the phase, [batch, z_dim] ~ N(0, 1); ``offset``: the first row of this round within the phase's
        latents (rounds of --batch-gpu)."""
        del phase, offset
        return self.rng.normal([batch, z_dim])

    def labels(self, phase, batch, label_pool, c_dim, offset=0):
        """One-hot labels [batch, c_dim] of generated images: those of random training images
        (``label_pool``: the class index of every image), as NVIDIA's loop draws them."""
        del phase, offset
        index = self.rng.uniform([batch], 0, tf.size(label_pool, out_type=tf.int64), dtype=tf.int64)
        return tf.one_hot(tf.gather(label_pool, index), c_dim)

    def mixing(self, phase, batch, z_dim, num_ws, prob, offset=0):
        """(cutoff, mix_z) of a style-mixing generator call: cutoff uniform in [1, num_ws) with
        probability ``prob``, else ``num_ws`` (no mixing); mix_z [batch, z_dim] ~ N(0, 1)."""
        del phase, offset
        cutoff = self.rng.uniform([], 1, num_ws, dtype=tf.int64)
        cutoff = tf.where(self.rng.uniform([]) < prob, cutoff, tf.constant(num_ws, tf.int64))
        return cutoff, self.rng.normal([batch, z_dim])

    def noise(self, phase, shape, key=None):
        """A per-pixel noise input [N, H, W, 1] ~ N(0, 1); ``key`` is the layer's ``noise_const`` variable."""
        del phase, key
        return self.rng.normal(shape)

    def noise_fn(self, phase):
        """The noise draw of one phase as the synthesis layers call it: ``fn(shape, key)``."""
        return lambda shape, key=None: self.noise(phase, shape, key)

    def path_length_noise(self, phase, shape):
        """The image-space draw y ~ N(0, 1) of the path-length penalty (NHWC; not yet divided by sqrt(H W))."""
        del phase
        return self.rng.normal(shape)

    def augment_rng(self, phase):
        """The generator the augmentation pipeline draws from."""
        del phase
        return self.rng


class RecordedSource(RandomSource):
    """Stored arrays instead of draws, indexed by the training step.

    Args:
        step: the GAN's step counter (a variable); draws of step ``s`` are ``arrays[...][s - first_step]``.
        first_step: the step of the first stored row.
        latents: ``{phase: [S, batch, z_dim]}``; a phase that asks for fewer rows gets the first ones
            (NVIDIA's path-length phase uses the first batch // pl_batch_shrink of its latents).
        mixing: ``{phase: ([S] cutoffs, [S, batch, z_dim] mix_z)}``.
        path_length_noise: ``{phase: [S, N, H, W, C]}``.
        noise: ``[(noise_const variable, [H, W] array)]``: the noise input of that variable's layer, the
            same at every step (NVIDIA's noise_mode='const' in training).
        labels: ``{phase: [S, batch, c_dim]}``.
    Draws that were not recorded raise ValueError naming what is missing.
    """

    def __init__(self, step, first_step=0, latents=None, mixing=None, path_length_noise=None, noise=None,
                 labels=None):
        self.step, self.first_step = step, int(first_step)
        const = lambda a, dtype=tf.float32: tf.constant(np.asarray(a), dtype)
        self._latents = {k: const(v) for k, v in (latents or {}).items()}
        self._mixing = {k: (const(c, tf.int64), const(z)) for k, (c, z) in (mixing or {}).items()}
        self._pl_noise = {k: const(v) for k, v in (path_length_noise or {}).items()}
        self._noise = {id(var): (var, const(v)) for var, v in (noise or [])}
        self._labels = {k: const(v) for k, v in (labels or {}).items()}

    def _row(self, table, phase, what):
        if phase not in table:
            raise ValueError(f'the recording has no {what} for phase {phase!r} (recorded: {sorted(table) or "none"})')
        return tf.gather(table[phase], tf.cast(self.step, tf.int64) - self.first_step)

    def latents(self, phase, batch, z_dim, offset=0):
        return self._row(self._latents, phase, 'latents')[offset:offset + batch]

    def labels(self, phase, batch, label_pool, c_dim, offset=0):
        return self._row(self._labels, phase, 'labels')[offset:offset + batch]

    def mixing(self, phase, batch, z_dim, num_ws, prob, offset=0):
        if phase not in self._mixing:
            raise ValueError(f'the recording has no style-mixing draws for phase {phase!r}')
        cutoffs, mix_z = self._mixing[phase]
        index = tf.cast(self.step, tf.int64) - self.first_step
        return tf.gather(cutoffs, index), tf.gather(mix_z, index)[offset:offset + batch]

    def noise(self, phase, shape, key=None):
        if id(key) not in self._noise:
            raise ValueError(f'the recording has no noise input for the layer of {getattr(key, "path", key)!r}')
        return tf.broadcast_to(self._noise[id(key)][1][tf.newaxis, :, :, tf.newaxis], shape)

    def path_length_noise(self, phase, shape):
        return self._row(self._pl_noise, phase, 'path-length noise')[:shape[0]]

    def augment_rng(self, phase):
        raise ValueError('the recording holds no augmentation draws: replay it with augmentation off')
