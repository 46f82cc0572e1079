"""The GAN as a ``keras.Model``: ``compile(g_optimizer=..., d_optimizer=...)`` then ``fit(dataset)``.

One ``train_step`` is one step of the reference's training loop (StyleGAN2Loss):
G main (non-saturating loss), D main (logistic loss; G's moving averages are updated
while generating here, as in the reference), lazy R1 every ``r1_interval`` steps as a
separate D step with the penalty scaled by the interval, then the G EMA update
(``ema_kimg`` with ``ema_rampup``). StyleGAN3-R blurs the images D sees (sigma
``blur_init_sigma`` fading to 0 over ``blur_fade_kimg``). Style mixing mixes two ws at
a random cutoff with probability ``style_mixing_prob``. StyleGAN2 adds path-length
regularisation (``pl_weight`` 2, every ``pl_interval`` = 4 steps, half batch, as a separate G
step). With an ``augment_pipe`` (ADA), the images D sees are augmented with probability
``augment_p``; with ``ada_target`` set, p is adjusted every ``ada_interval`` steps from the
sign of D's real logits (the reference's rule). Latents and augmentation draw from
``self.rng``, a ``tf.random.Generator`` whose state is checkpointed.
"""

import numpy as np
import tensorflow as tf
import keras

from afgan_tf.training import augment
from afgan_tf.training import loss as losses


def lazy_adam(learning_rate, reg_interval=None, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    """Adam with the reference's lazy-regularisation correction of lr and betas."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return keras.optimizers.Adam(learning_rate=learning_rate * ratio, beta_1=beta_1 ** ratio,
                                 beta_2=beta_2 ** ratio, epsilon=epsilon)


def nan_to_num(grad):
    """The reference's ``nan_to_num(nan=0, posinf=1e5, neginf=-1e5)`` of gradients (finite values kept)."""
    grad = tf.where(tf.math.is_nan(grad), tf.zeros_like(grad), grad)
    big = tf.constant(1e5, grad.dtype)
    return tf.where(tf.math.is_inf(grad), tf.where(grad > 0, big, -big), grad)


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
                 pl_weight=0.0,             # Path-length regularisation weight (StyleGAN2: 2).
                 pl_interval=4,             # Lazy path-length interval (steps).
                 pl_batch_shrink=2,         # Path-length batch = batch / shrink.
                 pl_decay=0.01,             # Decay of the path-length running mean.
                 augment_pipe=None,         # AugmentPipe (ADA) or None.
                 augment_p=0.0,             # Initial augmentation probability.
                 ada_target=None,           # ADA target of E[sign(D(real))], None = fixed p.
                 ada_interval=4,            # Steps between p adjustments.
                 ada_kimg=500,              # kimg for p to move by 1.
                 seed=0,                    # Seed of the GAN's random generator (latents, noise, augmentation).
                 label_pool=None,           # Class index of every training image (conditional G): the
                                            # generator's labels are drawn from these, as the reference does.
                 **kwargs):
        super().__init__(**kwargs)
        self.G, self.D, self.G_ema = G, D, G_ema
        self.batch_size = int(batch_size)
        self.r1_gamma, self.r1_interval = float(r1_gamma), r1_interval
        self.ema_kimg = batch_size * 10 / 32 if ema_kimg is None else float(ema_kimg)
        self.ema_rampup = ema_rampup
        self.style_mixing_prob = float(style_mixing_prob)
        self.blur_init_sigma, self.blur_fade_kimg = float(blur_init_sigma), float(blur_fade_kimg)
        self.blur_radius = losses.blur_radius(self.blur_init_sigma)    # Covers the whole schedule.
        # Counters: every replica adds the same amount; the first replica's update is kept.
        self.nimg = self.add_weight(name='nimg', shape=(), initializer='zeros', dtype='float64', trainable=False,
                                    aggregation='only_first_replica')
        self.step = self.add_weight(name='step', shape=(), initializer='zeros', dtype='int64', trainable=False,
                                    aggregation='only_first_replica')
        self.pl_weight, self.pl_interval = float(pl_weight), int(pl_interval)
        self.pl_batch_shrink, self.pl_decay = int(pl_batch_shrink), float(pl_decay)
        self.pl_mean = self.add_weight(name='pl_mean', shape=(), initializer='zeros', trainable=False,
                                       aggregation='mean')
        self.augment_pipe = augment_pipe
        self.ada_target, self.ada_interval, self.ada_kimg = ada_target, int(ada_interval), float(ada_kimg)
        self.augment_p = self.add_weight(name='augment_p', shape=(), initializer=keras.initializers.Constant(
            float(augment_p)), trainable=False, aggregation='only_first_replica')
        # Sum of sign(D(real)) and count since the last ADA adjustment (summed over replicas).
        self.ada_signs = self.add_weight(name='ada_signs', shape=(), initializer='zeros', trainable=False,
                                         aggregation='sum')
        self.ada_count = self.add_weight(name='ada_count', shape=(), initializer='zeros', trainable=False,
                                         aggregation='sum')
        self.rng = tf.random.Generator.from_seed(int(seed))
        self.label_pool = None
        if G.c_dim:
            if label_pool is None or len(label_pool) == 0:
                raise ValueError('label_pool: a conditional generator (c_dim > 0) needs the dataset\'s labels')
            self.label_pool = tf.constant(np.asarray(label_pool, np.int64))
        names = ('loss_G', 'loss_D', 'loss_r1', 'r1') + (('loss_pl', 'pl_penalty') if self.pl_weight > 0 else ())
        self.tracker = {name: keras.metrics.Mean(name=name) for name in names}
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
        return self.rng.normal([batch, self.G.z_dim])

    def _fake_labels(self, batch):
        """Labels of generated images: those of random training images (None if unconditional)."""
        if self.label_pool is None:
            return None
        index = self.rng.uniform([batch], 0, tf.size(self.label_pool, out_type=tf.int64), dtype=tf.int64)
        return tf.one_hot(tf.gather(self.label_pool, index), self.G.c_dim)

    def _mapping(self, z, c, update_emas=False):
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            num_ws = self.G.num_ws
            cutoff = self.rng.uniform([], 1, num_ws, dtype=tf.int64)
            cutoff = tf.where(self.rng.uniform([]) < self.style_mixing_prob, cutoff, tf.cast(num_ws, tf.int64))
            ws_mix = self.G.mapping(self.rng.normal(tf.shape(z)), c)
            mix = (tf.range(num_ws, dtype=tf.int64) >= cutoff)[tf.newaxis, :, tf.newaxis]
            ws = tf.where(mix, ws_mix, ws)
        return ws

    def _generate(self, z, c, update_emas=False):
        return self.G.synthesis(self._mapping(z, c, update_emas), noise_mode='random', update_emas=update_emas,
                                noise_rng=self.rng)

    def blur_sigma(self):
        if self.blur_fade_kimg <= 0 or self.blur_init_sigma <= 0:
            return tf.constant(0.0)
        frac = 1 - tf.cast(self.nimg, tf.float32) / (self.blur_fade_kimg * 1e3)
        return tf.maximum(frac, 0.0) * self.blur_init_sigma

    def _discriminate(self, img, c):
        if self.blur_init_sigma > 0:
            img = losses.blur_images(img, self.blur_sigma(), max_radius=self.blur_radius)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img, self.augment_p, rng=self.rng)
        return self.D(img, c)

    def _apply(self, optimizer, tape, loss, variables):
        # float16: the loss is scaled for the backward pass, and the LossScaleOptimizer unscales the
        # gradients, skips a step whose gradients overflow and adapts the scale (dynamic loss scaling).
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        grads = tape.gradient(loss, variables,
                              output_gradients=optimizer.scale_loss(tf.ones_like(loss)) if scaled else None)
        # Variables without a gradient (e.g. D's output bias in the R1 step) are left out of the
        # update, as PyTorch's optimizers skip parameters whose .grad is None: their Adam moments
        # do not decay. Non-finite values are mapped as the reference's nan_to_num does (not under
        # loss scaling, where an overflow must be seen to skip the step).
        pairs = [(g if scaled else nan_to_num(g), v) for g, v in zip(grads, variables) if g is not None]
        if pairs:
            optimizer.apply(*zip(*pairs))

    def train_step(self, data):
        real, c = (data if isinstance(data, (tuple, list)) else (data, None))
        batch = tf.shape(real)[0]
        # Losses are averaged over the global batch (per-replica sums / global batch size).
        scale = 1.0 / self.batch_size

        with tf.GradientTape() as tape:                                  # G main.
            gen_c = self._fake_labels(batch)
            fake = self._generate(self._latents(batch), gen_c)
            per_sample_G = losses.generator_loss(self._discriminate(fake, gen_c))
            loss_G = tf.reduce_sum(per_sample_G) * scale
        self._apply(self.g_optimizer, tape, loss_G, self.G.trainable_variables)

        gen_c = self._fake_labels(batch)                                 # D main.
        fake = self._generate(self._latents(batch), gen_c, update_emas=True)
        with tf.GradientTape() as tape:
            real_logits = self._discriminate(real, c)
            per_sample_D = losses.discriminator_loss(real_logits, self._discriminate(fake, gen_c))
            loss_D = tf.reduce_sum(per_sample_D) * scale
        self._apply(self.d_optimizer, tape, loss_D, self.D.trainable_variables)
        self._count_signs(real_logits)

        interval = self.r1_interval or 1
        if self._r1_this_step():                                         # D reg (lazy R1).
            with tf.GradientTape() as tape:
                r1_per_sample, r1_logits = losses.r1_penalty(lambda x: self._discriminate(x, c), real)
                loss_r1 = tf.reduce_sum(r1_per_sample * (self.r1_gamma / 2)) * scale * interval
            self._apply(self.d_optimizer, tape, loss_r1, self.D.trainable_variables)
            # The reference's ADA statistic (Loss/signs/real) also counts the real logits of this phase.
            self._count_signs(r1_logits)
            # Logged only on R1 steps (per replica as a mean, like loss_G / loss_D).
            self.tracker['loss_r1'].update_state(tf.reduce_mean(r1_per_sample * (self.r1_gamma / 2)) * interval)
            self.tracker['r1'].update_state(tf.reduce_mean(r1_per_sample))

        if self._pl_this_step():                                         # G reg (lazy path length).
            pl_batch = tf.maximum(batch // self.pl_batch_shrink, 1)
            with tf.GradientTape() as tape:
                ws = self._mapping(self._latents(pl_batch), self._fake_labels(pl_batch))
                pl_penalty = losses.path_length_penalty(
                    # Second-order gradients: the reference path (the fused op has first-order gradients only).
                    lambda w: self.G.synthesis(w, noise_mode='random', impl='ref'), ws, self.pl_mean, self.pl_decay,
                    self.rng)
                loss_pl = tf.reduce_sum(pl_penalty * self.pl_weight) * self.pl_interval \
                    / (self.batch_size // self.pl_batch_shrink)
            self._apply(self.g_optimizer, tape, loss_pl, self.G.trainable_variables)
            self.tracker['loss_pl'].update_state(tf.reduce_mean(pl_penalty) * self.pl_weight * self.pl_interval)
            self.tracker['pl_penalty'].update_state(tf.reduce_mean(pl_penalty))

        self._update_ema()          # From the images seen before this step, as the reference.
        self.nimg.assign_add(tf.cast(self.batch_size, tf.float64))
        self.step.assign_add(1)
        # Per-replica means; the metrics average them over replicas (equal local batches).
        self.tracker['loss_G'].update_state(tf.reduce_mean(per_sample_G))
        self.tracker['loss_D'].update_state(tf.reduce_mean(per_sample_D))
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces outputs across workers with strategy.reduce(MEAN, axis=0): needs a batch axis.
            return {name: tf.reshape(m.result(), [1]) for name, m in self.tracker.items()}
        return {name: m.result() for name, m in self.tracker.items()}

    def _count_signs(self, real_logits):
        if self.ada_target is not None:
            self.ada_signs.assign_add(tf.reduce_sum(tf.sign(real_logits)))
            self.ada_count.assign_add(tf.cast(tf.size(real_logits), tf.float32))

    # Lazy R1 runs an extra optimizer step every r1_interval steps. Optimizer updates cannot
    # sit inside tf.cond under tf.distribute, so the choice is made in Python: fit() gets two
    # traced step functions (with and without R1) and a dispatcher that picks one per step.
    _trace_variant = None

    def _variant(self, step):
        """(R1 this step, path length this step)."""
        return (step % (self.r1_interval or 1) == 0, self.pl_weight > 0 and step % self.pl_interval == 0)

    def _r1_this_step(self):
        if self._trace_variant is not None:          # Set while fit() traces / runs a variant.
            return self._trace_variant[0]
        return self._variant(int(self.step.numpy()))[0]     # Direct eager calls.

    def _pl_this_step(self):
        if self._trace_variant is not None:
            return self._trace_variant[1]
        return self._variant(int(self.step.numpy()))[1]

    def adjust_augment_p(self):
        """ADA: moves p towards the target from the real-logit signs gathered since the last call."""
        count = float(self.ada_count.numpy())
        if self.ada_target is None or count == 0:
            return
        p = augment.ada_adjust(float(self.augment_p.numpy()), float(self.ada_signs.numpy()) / count,
                               self.ada_target, self.batch_size, self.ada_interval, self.ada_kimg)
        self.augment_p.assign(p)
        self.ada_signs.assign(0.0)
        self.ada_count.assign(0.0)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        if getattr(self, 'steps_per_execution', 1) not in (1, None):
            raise ValueError('GAN needs steps_per_execution=1 (lazy R1 is scheduled per step)')
        variants = {}
        for key in ((r1, pl) for r1 in (False, True) for pl in (False, True)):
            self.train_function = None
            super().make_train_function(force=True)      # Sets self.train_function (traced on first use).
            variants[key] = self.train_function
        counter = [int(self.step.numpy())]

        def train_function(iterator):
            key = self._variant(counter[0])
            counter[0] += 1
            self._trace_variant = key       # Read only while this variant is (re)traced.
            try:
                return variants[key](iterator)
            finally:
                self._trace_variant = None
                if self.ada_target is not None and counter[0] % self.ada_interval == 0:
                    self.adjust_augment_p()
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
