"""The GAN as a ``keras.Model``: ``compile(g_optimizer=..., d_optimizer=...)`` then ``fit(dataset)``.

One ``train_step`` is one iteration of NVIDIA's training loop with its ``StyleGAN2Loss``: the
phases of ``self.phases`` in NVIDIA's order, each running when ``step % interval == 0``:

* G: ``Gboth`` every step (no lazy regularisation, StyleGAN3), or ``Gmain`` every step and ``Greg``
  (path length, half batch) every ``pl_interval`` steps (StyleGAN2);
* D: ``Dmain`` (logistic loss; G's moving averages are updated while generating its fakes) every
  step and ``Dreg`` (R1) every ``r1_interval`` steps, or ``Dboth`` every step when ``r1_interval`` is None.

A phase computes ``loss.mean() * interval`` (the lazy-regularisation gain), its gradients with
NVIDIA's ``nan_to_num``, and takes one step of its module's optimizer (one Adam state per module,
shared by its phases; parameters without a gradient are skipped). Then G_ema follows G
(``ema_kimg`` with ``ema_rampup``), from the images seen before this step. StyleGAN3-R blurs the
images D sees (sigma ``blur_init_sigma`` fading to 0 over ``blur_fade_kimg``); StyleGAN2 mixes styles
with probability ``style_mixing_prob``. With an ``augment_pipe`` (ADA), the images D sees are
augmented with probability ``augment_p``; with ``ada_target`` set, p is adjusted every
``ada_interval`` steps from the sign of D's real logits (the reference's rule).

Every random draw comes from ``self.source`` (``training.randomness``): by default the run's
checkpointed ``tf.random.Generator`` ``self.rng``; the replay of NVIDIA's recorded steps swaps in
the recorded draws. Each phase reports NVIDIA's per-sample values (``Loss/G/loss``, ...).
"""

import collections

import numpy as np
import tensorflow as tf
import keras

from afgan_tf.training import augment
from afgan_tf.training import loss as losses
from afgan_tf.training.optimizers import assign_parts, flat_concat, torch_lerp
from afgan_tf.training.randomness import RandomSource


def nan_to_num(grad):
    """The reference's ``nan_to_num(nan=0, posinf=1e5, neginf=-1e5)`` of gradients (finite values kept)."""
    grad = tf.where(tf.math.is_nan(grad), tf.zeros_like(grad), grad)
    big = tf.constant(1e5, grad.dtype)
    return tf.where(tf.math.is_inf(grad), tf.where(grad > 0, big, -big), grad)


Phase = collections.namedtuple('Phase', ['name', 'module', 'interval'])
Phase.__doc__ = """A phase of NVIDIA's loop: 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg' or 'Dboth'; module 'G' or 'D';
it runs when step % interval == 0, with gain = interval."""

# Tracked means (logged to TensorBoard) and the per-sample report each one averages.
TRACKED = {'loss_G': 'Loss/G/loss', 'loss_D': 'Loss/D/loss', 'loss_r1': 'Loss/D/reg', 'r1': 'Loss/r1_penalty',
           'loss_pl': 'Loss/G/reg', 'pl_penalty': 'Loss/pl_penalty'}


class GAN(keras.Model):
    """Holds G, D and G_ema; ``fit`` takes batches of real images in [-1, 1] (and labels)."""

    def __init__(self,
                 G,                         # Generator (trained).
                 D,                         # Discriminator (trained).
                 G_ema,                     # Moving average of G (same architecture).
                 batch_size,                # Global batch size (for the EMA and kimg).
                 r1_gamma=2.0,              # R1 weight gamma.
                 r1_interval=16,            # Lazy R1 interval (steps), None = R1 in the main D phase (Dboth).
                 ema_kimg=None,             # EMA half-life in kimg, None = batch * 10 / 32.
                 ema_rampup=0.05,           # EMA ramp-up (fraction of the images seen), None = off.
                 style_mixing_prob=0.0,     # Probability of style mixing.
                 blur_init_sigma=0.0,       # Initial blur of D's inputs (StyleGAN3-R: 10).
                 blur_fade_kimg=0.0,        # Blur fades to 0 over this many kimg.
                 pl_weight=0.0,             # Path-length regularisation weight (StyleGAN2: 2).
                 pl_interval=None,          # Lazy path-length interval (steps), None = no lazy G phase (Gboth).
                 pl_batch_shrink=2,         # Path-length batch = batch / shrink.
                 pl_decay=0.01,             # Decay of the path-length running mean.
                 augment_pipe=None,         # AugmentPipe (ADA) or None.
                 augment_p=0.0,             # Initial augmentation probability.
                 ada_target=None,           # ADA target of E[sign(D(real))], None = fixed p.
                 ada_interval=4,            # Steps between p adjustments.
                 ada_kimg=500,              # kimg for p to move by 1.
                 batch_gpu=None,            # Images per round of a phase (gradients accumulated over the rounds
                                            # of the per-replica batch, NVIDIA's --batch-gpu); None = one round.
                 seed=0,                    # Seed of the GAN's random generator (latents, noise, augmentation).
                 label_pool=None,           # Class index of every training image (conditional G): the
                                            # generator's labels are drawn from these, as the reference does.
                 **kwargs):
        super().__init__(**kwargs)
        self.G, self.D, self.G_ema = G, D, G_ema
        self.batch_size = int(batch_size)
        self.batch_gpu = None if batch_gpu is None else int(batch_gpu)
        if self.batch_gpu is not None and self.batch_gpu < 1:
            raise ValueError(f'batch_gpu must be an integer >= 1 or None, got {batch_gpu!r}')
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
        self.pl_weight = float(pl_weight)
        self.pl_interval = None if pl_interval is None else int(pl_interval)
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
        self.source = RandomSource(self.rng)
        self.label_pool = None
        if G.c_dim:
            if label_pool is None or len(label_pool) == 0:
                raise ValueError('label_pool: a conditional generator (c_dim > 0) needs the dataset\'s labels')
            self.label_pool = tf.constant(np.asarray(label_pool, np.int64))
        self.phases = self._make_phases()
        names = ('loss_G', 'loss_D', 'loss_r1', 'r1') + (('loss_pl', 'pl_penalty') if self.pl_weight > 0 else ())
        self.tracker = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True           # Every variable exists already (G, D, G_ema, counters).

    def _make_phases(self):
        """NVIDIA's phases (training_loop.py): per module 'both' without lazy regularisation, else 'main' + 'reg'."""
        phases = []
        for module, interval in (('G', self.pl_interval), ('D', self.r1_interval)):
            if interval is None:
                phases.append(Phase(module + 'both', module, 1))
            else:
                phases += [Phase(module + 'main', module, 1), Phase(module + 'reg', module, int(interval))]
        return tuple(phases)

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

    # ------------------------------------------------------------------------------------------
    # NVIDIA's run_G and run_D; every draw from self.source.

    def _fake_labels(self, phase, batch):
        """Labels of generated images (None if unconditional)."""
        if self.label_pool is None:
            return None
        return self.source.labels(phase, batch, self.label_pool, self.G.c_dim, offset=self._offset)

    def _mapping(self, phase, z, c, update_emas=False):
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            num_ws = self.G.num_ws
            cutoff, mix_z = self.source.mixing(phase, tf.shape(z)[0], self.G.z_dim, num_ws, self.style_mixing_prob,
                                               offset=self._offset)
            mix = (tf.range(num_ws, dtype=tf.int64) >= cutoff)[tf.newaxis, :, tf.newaxis]
            ws = tf.where(mix, self.G.mapping(mix_z, c), ws)
        return ws

    def _synthesis(self, phase, ws, update_emas=False, impl='auto'):
        return self.G.synthesis(ws, noise_mode='random', update_emas=update_emas, impl=impl,
                                noise_rng=self.source.noise_fn(phase))

    def _generate(self, phase, batch, update_emas=False):
        """(images, labels) of ``batch`` generated images, as NVIDIA's run_G."""
        c = self._fake_labels(phase, batch)
        z = self.source.latents(phase, batch, self.G.z_dim, offset=self._offset)
        return self._synthesis(phase, self._mapping(phase, z, c, update_emas), update_emas), c

    def blur_sigma(self):
        """The StyleGAN3-R blur of D's inputs at the current image count (float64 maths, as NVIDIA's)."""
        if self.blur_fade_kimg <= 0 or self.blur_init_sigma <= 0:
            return tf.constant(0.0)
        frac = 1 - tf.cast(self.nimg, tf.float64) / (self.blur_fade_kimg * 1e3)
        return tf.cast(tf.maximum(frac, 0.0) * self.blur_init_sigma, tf.float32)

    def _discriminate(self, phase, img, c):
        if self.blur_init_sigma > 0:
            img = losses.blur_images(img, self.blur_sigma(), max_radius=self.blur_radius)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img, self.augment_p, rng=self.source.augment_rng(phase))
        return self.D(img, c)

    # ------------------------------------------------------------------------------------------
    # Phases.

    def _mean(self, values):
        """NVIDIA's loss.mean() of a per-sample loss, averaged over replicas (its gradients are all-reduced
        and divided by the number of GPUs)."""
        return tf.reduce_mean(values) / tf.distribute.get_strategy().num_replicas_in_sync

    def phase_active(self, phase):
        """Whether a phase has anything to compute (NVIDIA: Greg is 'none' without pl_weight, Dreg without gamma)."""
        return not ((phase.name == 'Greg' and self.pl_weight == 0) or (phase.name == 'Dreg' and self.r1_gamma == 0))

    def phases_at(self, step):
        """The phases that run at ``step`` (a Python int), in order."""
        return tuple(p for p in self.phases if self.phase_active(p) and step % p.interval == 0)

    def _rounds(self, real, c):
        """The per-replica batch in rounds of ``batch_gpu`` images (NVIDIA's ``split(batch_gpu)``)."""
        n = real.shape[0]
        if self.batch_gpu is None or n is None or self.batch_gpu >= n:
            return [(real, c)]
        if n % self.batch_gpu:
            raise ValueError(f'batch_gpu ({self.batch_gpu}) must divide the batch per replica ({n})')
        k = self.batch_gpu
        return [(real[i:i + k], None if c is None else c[i:i + k]) for i in range(0, n, k)]

    def phase_gradients(self, phase, real, c=None):
        """Computes one phase: (gradients, reports).

        ``gradients`` align with the phase's module's ``trainable_variables`` (None where a variable
        gets no gradient), with the gain (the phase's interval) included and non-finite values mapped
        as NVIDIA's ``nan_to_num`` (not under loss scaling, where an overflow must be seen to skip the
        step). ``reports`` holds NVIDIA's per-sample ``training_stats`` values of the phase
        (``{'Loss/G/loss': [batch], ...}``). Moving averages change where NVIDIA's do (the Dmain fakes).
        With ``batch_gpu``, the batch goes through in rounds of that many images, one after another, and
        their gradients add up (each round's loss a mean over its images, as NVIDIA's loop accumulates them).
        """
        total, reports, previous = None, {}, []
        for k, (r_real, r_c) in enumerate(self._rounds(real, c)):
            self._offset = k * (self.batch_gpu or 0)         # The round's rows of the phase's draws.
            with tf.control_dependencies(previous):          # One round at a time: memory of one round.
                grads, round_reports = self._round_gradients(phase, r_real, r_c)
            self._offset = 0
            total = grads if total is None else [a if b is None else b if a is None else a + b
                                                 for a, b in zip(total, grads)]
            for key, value in round_reports.items():
                reports.setdefault(key, []).append(value)
            previous = [g for g in grads if g is not None]
        optimizer = self.g_optimizer if phase.module == 'G' else self.d_optimizer
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        reports = {k: v[0] if len(v) == 1 else tf.concat(v, 0) for k, v in reports.items()}
        return [g if g is None or scaled else nan_to_num(g) for g in total], reports

    def _round_gradients(self, phase, real, c):
        """The gradients (not yet nan_to_num'ed) and reports of one round of a phase."""
        name, gain = phase.name, float(phase.interval)
        batch = tf.shape(real)[0]
        reports = {}
        flat = lambda x: tf.reshape(tf.cast(x, tf.float32), [-1])
        if phase.module == 'G':
            module, optimizer = self.G, self.g_optimizer
            with tf.GradientTape() as tape:
                terms = []
                if name in ('Gmain', 'Gboth'):
                    fake, gen_c = self._generate(name, batch)
                    logits = self._discriminate(name, fake, gen_c)
                    loss_G = losses.generator_loss(logits)
                    reports.update({'Loss/scores/fake': flat(logits), 'Loss/signs/fake': flat(tf.sign(logits)),
                                    'Loss/G/loss': flat(loss_G)})
                    terms.append(self._mean(loss_G) * gain)
                if name in ('Greg', 'Gboth') and self.pl_weight > 0:
                    pl_batch = tf.maximum(batch // self.pl_batch_shrink, 1)
                    c = self._fake_labels(name, pl_batch)
                    ws = self._mapping(name, self.source.latents(name, pl_batch, self.G.z_dim, offset=self._offset), c)
                    # Second-order gradients: the reference path (the fused op has first-order gradients only).
                    pl_penalty = losses.path_length_penalty(
                        lambda w: self._synthesis(name, w, impl='ref'), ws, self.pl_mean, self.pl_decay,
                        lambda shape: self.source.path_length_noise(name, shape))
                    reports.update({'Loss/pl_penalty': flat(pl_penalty), 'Loss/G/reg': flat(pl_penalty * self.pl_weight)})
                    terms.append(self._mean(pl_penalty * self.pl_weight) * gain)
                loss = tf.add_n(terms)
        else:
            module, optimizer = self.D, self.d_optimizer
            if name in ('Dmain', 'Dboth'):                  # Outside the tape: G is not differentiated here.
                fake, gen_c = self._generate(name, batch, update_emas=True)
            with tf.GradientTape() as tape:
                terms = []
                if name in ('Dmain', 'Dboth'):
                    fake_logits = self._discriminate(name, fake, gen_c)
                    reports.update({'Loss/scores/fake': flat(fake_logits), 'Loss/signs/fake': flat(tf.sign(fake_logits))})
                    loss_Dgen = tf.nn.softplus(fake_logits)
                    terms.append(self._mean(loss_Dgen) * gain)
                r1 = name in ('Dreg', 'Dboth') and self.r1_gamma > 0
                if r1:
                    r1_penalty, real_logits = losses.r1_penalty(lambda x: self._discriminate(name, x, c), real)
                else:
                    real_logits = self._discriminate(name, real, c)
                reports.update({'Loss/scores/real': flat(real_logits), 'Loss/signs/real': flat(tf.sign(real_logits))})
                if name in ('Dmain', 'Dboth'):
                    loss_Dreal = tf.nn.softplus(-real_logits)
                    reports['Loss/D/loss'] = flat(loss_Dgen + loss_Dreal)
                    terms.append(self._mean(loss_Dreal) * gain)
                if r1:
                    loss_Dr1 = r1_penalty * (self.r1_gamma / 2)
                    reports.update({'Loss/r1_penalty': flat(r1_penalty), 'Loss/D/reg': flat(loss_Dr1)})
                    terms.append(self._mean(loss_Dr1) * gain)
                loss = tf.add_n(terms)
        variables = module.trainable_variables
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        grads = tape.gradient(loss, variables,
                              output_gradients=optimizer.scale_loss(tf.ones_like(loss)) if scaled else None)
        return grads, reports

    def apply_phase_gradients(self, phase, grads):
        """One optimizer step of the phase's module. Variables whose gradient is None are left out of the
        update, as PyTorch's optimizers skip parameters whose .grad is None (their Adam moments and step
        count stay)."""
        module, optimizer = (self.G, self.g_optimizer) if phase.module == 'G' else (self.D, self.d_optimizer)
        pairs = [(g, v) for g, v in zip(grads, module.trainable_variables) if g is not None]
        if pairs:
            optimizer.apply(*zip(*pairs))

    def finish_step(self):
        """The end of a step: G_ema follows G (from the images seen before this step, as NVIDIA's), then the
        image and step counters advance. Returns the tracked means."""
        self._update_ema()
        self.nimg.assign_add(tf.cast(self.batch_size, tf.float64))
        self.step.assign_add(1)
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras reduces outputs across workers with strategy.reduce(MEAN, axis=0): needs a batch axis.
            return {name: tf.reshape(m.result(), [1]) for name, m in self.tracker.items()}
        return {name: m.result() for name, m in self.tracker.items()}

    def _track(self, reports):
        # Per-replica means; the metrics average them over replicas (equal local batches).
        for name, key in TRACKED.items():
            if key in reports and name in self.tracker:
                self.tracker[name].update_state(tf.reduce_mean(reports[key]))
        if self.ada_target is not None and 'Loss/signs/real' in reports:
            # The reference's ADA statistic (Loss/signs/real) counts the real logits of Dmain and Dreg.
            self.ada_signs.assign_add(tf.reduce_sum(reports['Loss/signs/real']))
            self.ada_count.assign_add(tf.cast(tf.size(reports['Loss/signs/real']), tf.float32))

    def train_step(self, data):
        real, c = (data if isinstance(data, (tuple, list)) else (data, None))
        for phase in self._phases_this_step():
            grads, reports = self.phase_gradients(phase, real, c)
            self.apply_phase_gradients(phase, grads)
            self._track(reports)
        return self.finish_step()

    # Lazy regularisation runs extra optimizer steps every few steps. Optimizer updates cannot sit
    # inside tf.cond under tf.distribute, so the choice is made in Python: fit() gets one traced step
    # function per distinct set of phases and a dispatcher that picks one per step.
    _trace_variant = None
    _offset = 0                 # First row of the current round within a phase's draws (set by phase_gradients).

    def _phases_this_step(self):
        if self._trace_variant is not None:          # Set while fit() traces / runs a variant.
            return self._trace_variant
        return self.phases_at(int(self.step.numpy()))       # Direct eager calls.

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
        period = int(np.lcm.reduce([p.interval for p in self.phases]))
        variants = {}
        for key in sorted({self.phases_at(step) for step in range(period)}):
            self.train_function = None
            super().make_train_function(force=True)      # Sets self.train_function (traced on first use).
            variants[key] = self.train_function
        counter = self.dispatch_counter = [int(self.step.numpy())]     # The step the next call runs.

        def train_function(iterator):
            key = self.phases_at(counter[0])
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
        """0.5 ** (batch / ema_nimg), ema_nimg = min(ema_kimg * 1000, nimg * ema_rampup), in float64 as NVIDIA's."""
        ema_nimg = tf.constant(self.ema_kimg * 1000, tf.float64)
        if self.ema_rampup is not None:
            ema_nimg = tf.minimum(ema_nimg, tf.cast(self.nimg, tf.float64) * self.ema_rampup)
        return tf.cast(tf.pow(tf.constant(0.5, tf.float64), self.batch_size / tf.maximum(ema_nimg, 1e-8)), tf.float32)

    def _update_ema(self):
        """G_ema = G.lerp(G_ema, beta) for parameters; buffers (w_avg, magnitude_ema, ...) are copied."""
        pairs = list(zip(self.G.reference_variables().values(), self.G_ema.reference_variables().values()))
        beta = self.ema_beta()

        def update(pairs, beta):
            # One lerp over the concatenated parameters (the same elementwise operations, a fraction of the ops).
            params = [(src, dst) for src, dst, trainable in pairs if trainable]
            if params:
                targets = [dst for _, dst in params]
                assign_parts(torch_lerp(flat_concat([src for src, _ in params]), flat_concat(targets), beta), targets)
            for src, dst, trainable in pairs:
                if not trainable:
                    dst.assign(src)

        ctx = tf.distribute.get_replica_context()
        if ctx is None or not tf.distribute.has_strategy():
            update([(src, dst, src.trainable) for src, dst in pairs], beta)
            return

        def merged(strategy, beta):             # Cross-replica context: update every local copy.
            local = strategy.experimental_local_results     # .value: the tf.distribute variable.
            copies = [(local(src.value), local(dst.value), src.trainable) for src, dst in pairs]
            betas = local(beta)
            for i in range(len(copies[0][1])):
                with tf.device(copies[0][1][i].device):
                    update([(s[i], d[i], trainable) for s, d, trainable in copies], betas[i if len(betas) > 1 else 0])
        ctx.merge_call(merged, args=(beta,))
