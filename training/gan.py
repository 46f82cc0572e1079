"""The GAN as a ``keras.Model``: ``compile(g_optimizer=..., d_optimizer=...)`` then ``fit(dataset)``.

One ``train_step`` is one step of the reference's training loop (StyleGAN2Loss):
G main (non-saturating loss), D main (logistic loss; G's moving averages are updated
while generating here, as in the reference), lazy R1 every ``r1_interval`` steps as a
separate D step with the penalty scaled by the interval, then the G EMA update
(``ema_kimg`` with ``ema_rampup``). StyleGAN3-R blurs the images D sees (sigma
``blur_init_sigma`` fading to 0 over ``blur_fade_kimg``). Style mixing mixes two ws at
a random cutoff with probability ``style_mixing_prob``.
"""

import numpy as np
import tensorflow as tf
import keras

from afgan_tf.training import loss as losses


def lazy_adam(learning_rate, reg_interval=None, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    """Adam with the reference's lazy-regularisation correction of lr and betas."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return keras.optimizers.Adam(learning_rate=learning_rate * ratio, beta_1=beta_1 ** ratio,
                                 beta_2=beta_2 ** ratio, epsilon=epsilon)


class GAN(keras.Model):
    """Holds G, D and G_ema; ``fit`` takes batches of real images in [-1, 1] (and labels)."""

    def __init__(self,
                 G,                         # Generator (trained).
                 D,                         # Discriminator (trained).
                 G_ema,                     # Moving average of G (same architecture).
                 batch_size,                # Global batch size (for the EMA and kimg).
                 r1_gamma=2.0,              # R1 weight gamma.
                 r1_interval=16,            # Lazy R1 interval (steps), None = every step.
                 ema_kimg=None,             # EMA half-life in kimg, None = batch * 10 / 32.
                 ema_rampup=0.05,           # EMA ramp-up (fraction of the images seen), None = off.
                 style_mixing_prob=0.0,     # Probability of style mixing.
                 blur_init_sigma=0.0,       # Initial blur of D's inputs (StyleGAN3-R: 10).
                 blur_fade_kimg=0.0,        # Blur fades to 0 over this many kimg.
                 **kwargs):
        super().__init__(**kwargs)
        self.G, self.D, self.G_ema = G, D, G_ema
        self.batch_size = int(batch_size)
        self.r1_gamma, self.r1_interval = float(r1_gamma), r1_interval
        self.ema_kimg = batch_size * 10 / 32 if ema_kimg is None else float(ema_kimg)
        self.ema_rampup = ema_rampup
        self.style_mixing_prob = float(style_mixing_prob)
        self.blur_init_sigma, self.blur_fade_kimg = float(blur_init_sigma), float(blur_fade_kimg)
        # Counters: every replica adds the same amount; the first replica's update is kept.
        self.nimg = self.add_weight(name='nimg', shape=(), initializer='zeros', dtype='float64', trainable=False,
                                    aggregation='only_first_replica')
        self.step = self.add_weight(name='step', shape=(), initializer='zeros', dtype='int64', trainable=False,
                                    aggregation='only_first_replica')
        self.tracker = {name: keras.metrics.Mean(name=name) for name in ('loss_G', 'loss_D', 'loss_r1', 'r1')}
        self.built = True           # Every variable exists already (G, D, G_ema, counters).

    def call(self, z, c=None):
        """Images from G_ema (what the trained model is for)."""
        return self.G_ema(z, c)

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        # Build the optimizers now (inside the strategy scope, if any), not lazily in train_step.
        self.g_optimizer.build(self.G.trainable_variables)
        self.d_optimizer.build(self.D.trainable_variables)

    @property
    def metrics(self):
        return list(self.tracker.values())

    def _latents(self, batch):
        return tf.random.normal([batch, self.G.z_dim])

    def _generate(self, z, c, update_emas=False):
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            num_ws = self.G.num_ws
            cutoff = tf.random.uniform([], 1, num_ws, dtype=tf.int64)
            cutoff = tf.where(tf.random.uniform([]) < self.style_mixing_prob, cutoff, tf.cast(num_ws, tf.int64))
            ws_mix = self.G.mapping(tf.random.normal(tf.shape(z)), c)
            mix = (tf.range(num_ws, dtype=tf.int64) >= cutoff)[tf.newaxis, :, tf.newaxis]
            ws = tf.where(mix, ws_mix, ws)
        return self.G.synthesis(ws, noise_mode='random', update_emas=update_emas)

    def blur_sigma(self):
        if self.blur_fade_kimg <= 0 or self.blur_init_sigma <= 0:
            return tf.constant(0.0)
        frac = 1 - tf.cast(self.nimg, tf.float32) / (self.blur_fade_kimg * 1e3)
        return tf.maximum(frac, 0.0) * self.blur_init_sigma

    def _discriminate(self, img, c):
        if self.blur_init_sigma > 0:
            img = losses.blur_images(img, self.blur_sigma())
        return self.D(img, c)

    def _apply(self, optimizer, tape, loss, variables):
        grads = tape.gradient(loss, variables)
        # No gradient (e.g. the output bias in R1) counts as zero; non-finite values are zeroed
        # as the reference does.
        grads = [tf.zeros_like(v) if g is None else tf.where(tf.math.is_finite(g), g, tf.zeros_like(g))
                 for g, v in zip(grads, variables)]
        optimizer.apply(grads, variables)

    def train_step(self, data):
        real, c = (data if isinstance(data, (tuple, list)) else (data, None))
        batch = tf.shape(real)[0]
        # Losses are averaged over the global batch (per-replica sums / global batch size).
        scale = 1.0 / self.batch_size

        with tf.GradientTape() as tape:                                  # G main.
            fake = self._generate(self._latents(batch), c)
            per_sample_G = losses.generator_loss(self._discriminate(fake, c))
            loss_G = tf.reduce_sum(per_sample_G) * scale
        self._apply(self.g_optimizer, tape, loss_G, self.G.trainable_variables)

        fake = self._generate(self._latents(batch), c, update_emas=True)     # D main.
        with tf.GradientTape() as tape:
            per_sample_D = losses.discriminator_loss(self._discriminate(real, c), self._discriminate(fake, c))
            loss_D = tf.reduce_sum(per_sample_D) * scale
        self._apply(self.d_optimizer, tape, loss_D, self.D.trainable_variables)

        interval = self.r1_interval or 1
        loss_r1, r1 = tf.constant(0.0), tf.constant(0.0)
        if self._r1_this_step():                                         # D reg (lazy R1).
            with tf.GradientTape() as tape:
                r1_per_sample = losses.r1_penalty(lambda x: self._discriminate(x, c), real)
                loss_r1 = tf.reduce_sum(r1_per_sample * (self.r1_gamma / 2)) * scale * interval
            self._apply(self.d_optimizer, tape, loss_r1, self.D.trainable_variables)
            # Reported per replica as a mean, like loss_G / loss_D (the metric averages replicas).
            loss_r1 = tf.reduce_mean(r1_per_sample * (self.r1_gamma / 2)) * interval
            r1 = tf.reduce_mean(r1_per_sample)

        self.nimg.assign_add(tf.cast(self.batch_size, tf.float64))
        self.step.assign_add(1)
        self._update_ema()
        # Per-replica means; the metrics average them over replicas (equal local batches).
        self.tracker['loss_G'].update_state(tf.reduce_mean(per_sample_G))
        self.tracker['loss_D'].update_state(tf.reduce_mean(per_sample_D))
        self.tracker['loss_r1'].update_state(loss_r1)
        self.tracker['r1'].update_state(r1)
        return {name: m.result() for name, m in self.tracker.items()}

    # Lazy R1 runs an extra optimizer step every r1_interval steps. Optimizer updates cannot
    # sit inside tf.cond under tf.distribute, so the choice is made in Python: fit() gets two
    # traced step functions (with and without R1) and a dispatcher that picks one per step.
    _trace_r1 = None

    def _r1_this_step(self):
        if self._trace_r1 is not None:              # Set while fit() traces / runs a variant.
            return self._trace_r1
        return int(self.step.numpy()) % (self.r1_interval or 1) == 0    # Direct eager calls.

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        if getattr(self, 'steps_per_execution', 1) not in (1, None):
            raise ValueError('GAN needs steps_per_execution=1 (lazy R1 is scheduled per step)')
        variants = {}
        for with_r1 in (False, True):
            self.train_function = None
            super().make_train_function(force=True)      # Sets self.train_function.
            variants[with_r1] = self.train_function
        interval = self.r1_interval or 1
        counter = [int(self.step.numpy())]

        def train_function(iterator):
            with_r1 = counter[0] % interval == 0
            counter[0] += 1
            self._trace_r1 = with_r1        # Read only while this variant is (re)traced.
            try:
                return variants[with_r1](iterator)
            finally:
                self._trace_r1 = None
        self.train_function = train_function
        return train_function

    def ema_beta(self):
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = tf.minimum(ema_nimg, tf.cast(self.nimg, tf.float32) * self.ema_rampup)
        return tf.pow(0.5, self.batch_size / tf.maximum(ema_nimg, 1e-8))

    def _update_ema(self):
        """G_ema = lerp(G, G_ema, beta) for parameters; buffers (w_avg, magnitude_ema, ...) are copied."""
        pairs = list(zip(self.G.reference_variables().values(), self.G_ema.reference_variables().values()))
        beta = self.ema_beta()

        def update(dst, src, beta, trainable):
            return dst.assign(src + (dst - src) * tf.cast(beta, dst.dtype) if trainable else src)

        ctx = tf.distribute.get_replica_context()
        if ctx is None or not tf.distribute.has_strategy():
            for src, dst in pairs:
                update(dst, src, beta, src.trainable)
            return

        def merged(strategy, beta):             # Cross-replica context: update every mirrored copy.
            for src, dst in pairs:      # .value: the tf.distribute variable under the Keras variable.
                strategy.extended.update(dst.value, update, args=(src.value, beta, src.trainable))
        ctx.merge_call(merged, args=(beta,))
