"""Replays NVIDIA's recorded training steps through this project's training step and compares.

    python -m afgan_tf.training.replay TRACE_DIR [--impl custom|ref] [--json] [--checks isolated,optimizer,end-to-end]

A trace directory (``../shared/reference/training_steps/<net>/``; the format is documented in
``../shared/README.md``, section "Training steps") holds NVIDIA's initial state (``G.npz``,
``D.npz``), the configuration and per-step facts (``steps.json``) and the recorded inputs,
gradients and weights (``steps.npz``). Everything is read from the trace: the networks from its
constructor arguments, the loss, lazy-regularisation, EMA and optimizer settings, the schedule and
every random draw (fed to the GAN through a ``RecordedSource``). The GAN is built and stepped by the
same code ``afgan-train`` runs (``GAN``, ``lazy_adam``, ``fit``), on one replica, in float32.

Groups compared, each against the float32 tolerance of the README section:

* schedule: which phases run at each step, the EMA beta and the R blur sigma;
* isolated: each step-0 phase started from its recorded inputs: gradients per tensor
  (max |diff| <= 1e-2 max|ref tensor| + 1e-4 max|ref phase|), reported values
  (<= 1e-3 max(1, |ref|)), the buffers it moves (w_avg, magnitude_ema <= 1e-5; pl_mean <= 1e-6);
* optimizer: the optimizer and the EMA alone (recorded gradients in, weights out):
  ||diff|| / ||update|| <= 3e-5 per module;
* end to end: three steps from the initial state through ``fit``: final G and D as
  ||diff|| / ||final - initial|| (StyleGAN3-T 3e-2, -R 1e-2, StyleGAN2 5e-3), G_ema (<= 0.1), the
  losses of the later steps (T 5e-3, R and StyleGAN2 1e-3) and the buffers after every step.

A trimmed trace (the tests' copy) may leave out arrays: checks whose reference is missing are
skipped and say so, and a phase input without its ``params_after`` is rebuilt from the recorded
gradients by the optimizer (the optimizer check covers that). The last line names the worst group;
the exit code is 1 when any group is over its tolerance, 2 for an unusable trace.
"""

import argparse
import dataclasses
import json
import math
import os
import pathlib
import sys

import numpy as np

CHECK_KINDS = ('isolated', 'optimizer', 'end-to-end')
# Float32 tolerances that differ by architecture (../shared/README.md); an unknown architecture gets the loosest.
END_TO_END = {'stylegan3-t': dict(final=3e-2, losses=5e-3), 'stylegan3-r': dict(final=1e-2, losses=1e-3),
              'stylegan2': dict(final=5e-3, losses=1e-3)}
LOOSEST = dict(final=3e-2, losses=5e-3)
# optimizer_ema: G_ema moves by (1 - beta) of G's displacement, so one weight of G that float32 rounds the other
# way (PyTorch's CPU sqrt is not correctly rounded, TensorFlow's is; one ulp of a raw mapping weight of magnitude
# 100, lr_multiplier 0.01, is 7.6e-6) shows in G_ema as about 2.6e-4 of its update.
TOL = dict(grad_rel=1e-2, grad_phase=1e-4, report=1e-3, buffer=1e-5, pl_mean=1e-6, optimizer=3e-5,
           optimizer_ema=1e-3, ema=0.1, beta=1e-7, sigma=1e-5)
BUFFER_SUFFIXES = ('w_avg', 'magnitude_ema')


class TraceError(ValueError):
    """The directory is not a usable trace (the message says why)."""


@dataclasses.dataclass
class Check:
    """One compared group: passes when value <= tolerance (skipped checks have a reason instead)."""
    group: str
    value: float = 0.0
    tolerance: float = 1.0
    detail: str = ''
    skipped: str = None

    @property
    def ratio(self):
        if self.skipped:
            return 0.0
        if self.tolerance == 0:
            return 0.0 if self.value == 0 else math.inf
        return math.inf if not math.isfinite(self.value) else self.value / self.tolerance

    @property
    def passed(self):
        return self.skipped is not None or self.value <= self.tolerance

    def line(self):
        if self.skipped:
            return f'  skip  {self.group}: {self.skipped}'
        status = 'ok  ' if self.passed else 'FAIL'
        return f'  {status}  {self.group}: {self.value:.3g} (tolerance {self.tolerance:.3g}){"; " + self.detail if self.detail else ""}'


# ------------------------------------------------------------------------------------------------
# The trace.

class Trace:
    """A trace directory: ``config`` (steps.json), ``arrays`` (steps.npz), ``G_state`` / ``D_state``."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        for name in ('steps.json', 'steps.npz', 'G.npz', 'D.npz'):
            if not (self.path / name).is_file():
                raise TraceError(f'{self.path}: not a training-step trace (no {name})')
        try:
            self.config = json.loads((self.path / 'steps.json').read_text())
            with np.load(self.path / 'steps.npz') as z:
                self.arrays = {k: z[k] for k in z.files}
            self.G_state = dict(np.load(self.path / 'G.npz'))
            self.D_state = dict(np.load(self.path / 'D.npz'))
        except (OSError, ValueError) as e:
            raise TraceError(f'{self.path}: cannot be read ({e})') from None
        for key in ('architecture', 'generator_kwargs', 'discriminator_kwargs', 'loss_kwargs', 'batch', 'phases',
                    'per_step', 'optimizers', 'ema_kimg', 'ema_rampup', 'D_reg_interval'):
            if key not in self.config:
                raise TraceError(f'{self.path}/steps.json has no {key!r}')
        self.per_step = self.config['per_step']
        self.phase_names = [p['name'] for p in self.config['phases']]

    def get(self, key):
        return self.arrays.get(key)

    def stored(self, prefix):
        """``{name: array}`` of the keys under ``prefix/``."""
        prefix = prefix.rstrip('/') + '/'
        return {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def real_images(self, s):
        return np.transpose(self.arrays[f'step{s}/real_img'], [0, 2, 3, 1]).astype(np.float32)


def _nhwc(a):
    return np.transpose(a, [0, 2, 3, 1]) if a.ndim == 4 else a


def recorded_source(trace, gan):
    """The trace's draws as a ``RecordedSource`` indexed by the GAN's step counter."""
    from afgan_tf.training.randomness import RecordedSource
    steps = range(len(trace.per_step))
    latents = {}
    for phase in trace.config['phases']:
        begin, end = phase['gen_z_rows']
        latents[phase['name']] = np.stack([trace.arrays[f'step{s}/all_gen_z'][begin:end] for s in steps])

    def stacked(key, fill=0):
        found = [trace.get(key.format(s=s)) for s in steps]
        if all(a is None for a in found):
            return None
        like = next(a for a in found if a is not None)
        return np.stack([np.full_like(like, fill) if a is None else a for a in found])
    mixing, pl_noise = {}, {}
    num_ws = gan.G.num_ws
    for name in trace.phase_names:
        cutoffs = stacked(f'step{{s}}/{name}/mix_cutoff', fill=num_ws)
        if cutoffs is not None:
            mixing[name] = (cutoffs.astype(np.int64), stacked(f'step{{s}}/{name}/mix_z'))
        randn = stacked(f'step{{s}}/{name}/pl_randn')
        if randn is not None:
            pl_noise[name] = np.transpose(randn, [0, 1, 3, 4, 2])
    noise = []
    if str(trace.config.get('patches', {}).get('synthesis_layer_noise_mode_default')) == 'const':
        variables = gan.G.reference_variables()
        noise = [(variables[k], v) for k, v in trace.G_state.items() if k.endswith('.noise_const') and k in variables]
    return RecordedSource(gan.step, first_step=trace.per_step[0]['batch_idx'], latents=latents, mixing=mixing,
                          path_length_noise=pl_noise, noise=noise)


def build_gan(trace):
    """G, D, G_ema from the trace's initial state and the GAN with its training configuration, compiled with
    the optimizers ``afgan-train`` builds (``lazy_adam`` of the base lr and betas the trace's values imply)."""
    from afgan_tf import nvidia
    from afgan_tf.training.gan import GAN
    from afgan_tf.training.optimizers import lazy_adam
    cfg = trace.config
    if cfg.get('augment_pipe'):
        raise TraceError(f'{trace.path}: the trace used augmentation, whose draws the format does not record')
    if cfg.get('num_gpus', 1) != 1:
        raise TraceError(f'{trace.path}: a trace of {cfg["num_gpus"]} GPUs; the replay runs one replica')
    if cfg.get('batch_gpu', cfg['batch']) != cfg['batch']:
        raise TraceError(f'{trace.path}: a trace in rounds of batch_gpu {cfg["batch_gpu"]}; the format records one '
                         'draw per phase, so the replay runs one round')
    arch = cfg['architecture']
    try:
        G = nvidia.generator_from_state_dict(arch, cfg['generator_kwargs'], trace.G_state)
        G_ema = nvidia.generator_from_state_dict(arch, cfg['generator_kwargs'], trace.G_state)
        D = nvidia.discriminator_from_state_dict(cfg['discriminator_kwargs'], trace.D_state)
    except ValueError as e:
        raise TraceError(f'{trace.path}: the networks cannot be built from the trace ({e})') from None
    for model in (G, G_ema, D):
        model.set_precision('float32')
    loss = cfg['loss_kwargs']
    gan = GAN(G, D, G_ema, batch_size=cfg['batch'], r1_gamma=loss['r1_gamma'], r1_interval=cfg['D_reg_interval'],
              pl_interval=cfg.get('G_reg_interval'), style_mixing_prob=loss.get('style_mixing_prob', 0),
              pl_weight=loss.get('pl_weight', 0), pl_batch_shrink=loss.get('pl_batch_shrink', 2),
              pl_decay=loss.get('pl_decay', 0.01), blur_init_sigma=loss.get('blur_init_sigma', 0),
              blur_fade_kimg=loss.get('blur_fade_kimg', 0), ema_kimg=cfg['ema_kimg'], ema_rampup=cfg['ema_rampup'],
              seed=cfg.get('seed', 0))
    ours = [(p.name, p.interval) for p in gan.phases]
    theirs = [(p['name'], p['interval']) for p in cfg['phases']]
    if ours != theirs:
        raise TraceError(f'{trace.path}: the trace\'s phases {theirs} are not the GAN\'s {ours} for this configuration')
    optimizers = []
    for module, interval in (('G', cfg.get('G_reg_interval')), ('D', cfg['D_reg_interval'])):
        opt = cfg['optimizers'][module]
        if opt.get('class_name', 'torch.optim.Adam') != 'torch.optim.Adam':
            raise TraceError(f'{trace.path}: optimizer {opt.get("class_name")!r} (the replay knows torch.optim.Adam)')
        ratio = opt.get('mb_ratio') or 1.0
        beta1, beta2 = opt['betas']
        optimizers.append(lazy_adam(opt['lr'] / ratio, interval, beta_1=beta1 ** (1 / ratio),
                                    beta_2=beta2 ** (1 / ratio), epsilon=opt.get('eps', 1e-8)))
    gan.compile(g_optimizer=optimizers[0], d_optimizer=optimizers[1])
    gan.source = recorded_source(trace, gan)
    start(gan, trace)
    return gan


def start(gan, trace):
    """The counters at the trace's first step."""
    first = trace.per_step[0]
    gan.nimg.assign(float(first['cur_nimg']))
    gan.step.assign(int(first['batch_idx']))
    before = trace.get('pl_mean/before')
    gan.pl_mean.assign(float(before) if before is not None else float(trace.config.get('pl_mean_before') or 0.0))


# ------------------------------------------------------------------------------------------------
# Comparisons.

def _names(module):
    """[(reference name, variable)] of a module's trainable variables, in trainable_variables order."""
    by_id = {id(v): k for k, v in module.reference_variables().items()}
    return [(by_id[id(v)], v) for v in module.trainable_variables]


def _params(module):
    return {name: v.numpy() for name, v in _names(module)}


def _set_params(module, values):
    for name, var in _names(module):
        if name in values:
            var.assign(values[name])


def _set_buffers(G, state):
    for name, var in G.reference_variables().items():
        if not var.trainable and name.rsplit('.', 1)[-1] in BUFFER_SUFFIXES and name in state:
            var.assign(state[name])


def relative_change(ours, ref, initial, group, tolerance):
    """||ours - ref|| / ||ref - initial|| over the tensors present in ``ref``."""
    names = [k for k in ref if k in ours and k in initial]
    if not names:
        return Check(group, skipped='not in this trace')
    diff = math.sqrt(sum(float(np.sum((ours[k].astype(np.float64) - ref[k]) ** 2)) for k in names))
    update = math.sqrt(sum(float(np.sum((ref[k].astype(np.float64) - initial[k]) ** 2)) for k in names))
    worst = max(names, key=lambda k: float(np.max(np.abs(ours[k] - ref[k]))) if ref[k].size else 0.0)
    value = diff / update if update > 0 else (0.0 if diff == 0 else math.inf)
    return Check(group, value, tolerance, f'||diff|| {diff:.3g}, ||update|| {update:.3g} over {len(names)} tensors, '
                 f'largest |diff| in {worst}')


def compare_gradients(group, ours, trace, phase, grad_none):
    """Per tensor: max |diff| <= grad_rel max|ref tensor| + grad_phase max|ref phase|."""
    stored = trace.stored(f'step0/{phase}/grad')
    problems = [f'{k} has no gradient here but has one in NVIDIA\'s' for k, g in ours.items()
                if g is None and k not in grad_none and k in stored]
    problems += [f'{k} has a gradient here but none in NVIDIA\'s' for k, g in ours.items()
                 if g is not None and k in grad_none]
    if problems:
        return Check(group, math.inf, 1.0, '; '.join(problems[:4]))
    names = [k for k, g in ours.items() if g is not None and k in stored]
    if not names:
        return Check(group, skipped='no gradients in this trace')
    phase_max = max(float(np.max(np.abs(stored[k]))) if stored[k].size else 0.0 for k in names)
    worst, ratio, info = None, -1.0, ''
    for k in names:
        if not stored[k].size:
            continue
        diff = float(np.max(np.abs(ours[k] - stored[k])))
        bound = TOL['grad_rel'] * float(np.max(np.abs(stored[k]))) + TOL['grad_phase'] * phase_max
        r = diff / bound if bound > 0 else (0.0 if diff == 0 else math.inf)
        if r > ratio:
            worst, ratio, info = k, r, f'max|diff| {diff:.3g}, allowed {bound:.3g}'
    return Check(group, ratio, 1.0, f'per-tensor max|diff| / allowed, {len(names)} tensors; worst {worst}: {info}')


def compare_reports(group, ours, reference):
    """Reported per-sample values: max |diff| / max(1, |ref|)."""
    missing = [k for k in reference if k not in ours]
    if missing:
        return Check(group, math.inf, TOL['report'], f'not reported here: {missing}')
    if not reference:
        return Check(group, skipped='no reported values in this trace')
    worst, value = None, -1.0
    for k, ref in reference.items():
        v = float(np.max(np.abs(np.asarray(ours[k]).reshape(-1) - ref.reshape(-1)) / np.maximum(1, np.abs(ref.reshape(-1)))))
        if v > value:
            worst, value = k, v
    return Check(group, value, TOL['report'], f'{len(reference)} values; worst {worst}')


def compare_buffers(group, G, reference, tolerance):
    ours = {k: v.numpy() for k, v in G.reference_variables().items()}
    names = [k for k in reference if k in ours]
    if not names:
        return Check(group, skipped='not in this trace')
    diffs = {k: float(np.max(np.abs(ours[k] - reference[k]))) for k in names}
    worst = max(diffs, key=diffs.get)
    return Check(group, diffs[worst], tolerance, f'max |diff| over {len(names)} buffers; worst {worst}')


# ------------------------------------------------------------------------------------------------
# The three kinds of check.

def check_schedule(gan, trace):
    problems, beta_err, sigma_err = [], 0.0, 0.0
    for facts in trace.per_step:
        gan.nimg.assign(float(facts['cur_nimg']))
        ours = [p.name for p in gan.phases_at(int(facts['batch_idx']))]
        if ours != list(facts['phases_run']):
            problems.append(f'step {facts["step"]}: phases {ours}, NVIDIA {facts["phases_run"]}')
        if 'ema_beta' in facts:
            beta_err = max(beta_err, abs(float(gan.ema_beta()) - facts['ema_beta']))
        if 'blur_sigma' in facts:
            sigma_err = max(sigma_err, abs(float(gan.blur_sigma()) - facts['blur_sigma']))
    start(gan, trace)
    checks = [Check('schedule: phases per step', math.inf if problems else 0.0, 0.0, '; '.join(problems)),
              Check('schedule: EMA beta', beta_err, TOL['beta'], 'max |diff| over the steps'),
              Check('schedule: blur sigma', sigma_err, TOL['sigma'], 'max |diff| over the steps')]
    return checks


def check_optimizer(trace, log):
    """Recorded gradients through the optimizers and the EMA; returns (checks, our params after each step-0 phase)."""
    import tensorflow as tf
    gan = build_gan(trace)
    modules = {'G': gan.G, 'D': gan.D}
    initial = {'G': _params(gan.G), 'D': _params(gan.D)}
    reference_before = dict(initial)           # NVIDIA's latest stored weights of each module ...
    current = {'G': True, 'D': True}           # ... and whether they are its weights right now.
    after_phase, checks = {}, []
    for s, facts in enumerate(trace.per_step):
        for phase in gan.phases_at(int(facts['batch_idx'])):
            module = modules[phase.module]
            stored = trace.stored(f'step{s}/{phase.name}/grad')
            none = set(facts.get('grad_none', {}).get(phase.name, []))
            names = _names(module)
            missing = [k for k, _ in names if k not in stored and k not in none]
            if missing:
                checks.append(Check(f'optimizer: step {s} and later', skipped=f'the trace holds no gradients of '
                                    f'{phase.name} at step {s} ({len(missing)} tensors)'))
                return checks, after_phase
            if s == 0 and current[phase.module]:   # From NVIDIA's weights before the phase, where the trace has
                _set_params(module, reference_before[phase.module])   # them (float32 flips do not carry over).
            gan.apply_phase_gradients(phase, [None if k in none else tf.constant(stored[k]) for k, _ in names])
            if s == 0:
                after_phase[phase.name] = _params(module)
                ref = trace.stored(f'step0/{phase.name}/params_after')
                if ref:
                    checks.append(relative_change(after_phase[phase.name], ref, reference_before[phase.module],
                                                  f'optimizer: {phase.module} after step-0 {phase.name}',
                                                  TOL['optimizer']))
                    reference_before[phase.module] = ref
                current[phase.module] = bool(ref)
        gan.finish_step()
    log('  optimizer: replayed the recorded gradients of every step')
    for name, model in (('G', gan.G), ('D', gan.D)):
        checks.append(relative_change(_params(model), trace.stored(f'final/{name}'), initial[name],
                                      f'optimizer: final {name}', TOL['optimizer']))
    checks.append(relative_change(_params(gan.G_ema), trace.stored('final/G_ema'), initial['G'],
                                  'optimizer: final G_ema (EMA of the replayed G)', TOL['optimizer_ema']))
    return checks, after_phase


def check_isolated(trace, reconstructed, log):
    """Each step-0 phase from its recorded inputs (or, without them, the optimizer's replay of its gradients)."""
    import tensorflow as tf
    gan = build_gan(trace)
    modules = {'G': gan.G, 'D': gan.D}
    inputs = {'G': _params(gan.G), 'D': _params(gan.D)}
    facts = trace.per_step[0]
    real = tf.constant(trace.real_images(0))
    checks = []
    for phase in gan.phases_at(int(facts['batch_idx'])):
        for name, model in modules.items():
            _set_params(model, inputs[name])
        _set_buffers(gan.G, trace.G_state)
        start(gan, trace)
        pl_before = trace.get(f'step0/{phase.name}/pl_mean_before')
        if pl_before is not None:
            gan.pl_mean.assign(float(pl_before))
        grads, reports = tf.function(lambda x, p=phase: gan.phase_gradients(p, x))(real)
        module = modules[phase.module]
        ours = {k: (None if g is None else g.numpy()) for (k, _), g in zip(_names(module), grads)}
        none = set(facts.get('grad_none', {}).get(phase.name, []))
        label = f'isolated: step-0 {phase.name}'
        checks.append(compare_gradients(f'{label} gradients', ours, trace, phase.name, none))
        checks.append(compare_reports(f'{label} reported values', {k: v.numpy() for k, v in reports.items()},
                                      trace.stored(f'step0/{phase.name}/report')))
        if phase.name in ('Dmain', 'Dboth'):          # The only phase that moves G's buffers.
            checks.append(compare_buffers(f'{label} buffers (w_avg, magnitude_ema)', gan.G,
                                          trace.stored('step0/after/G'), TOL['buffer']))
        pl_after = trace.get(f'step0/{phase.name}/pl_mean_after')
        if pl_after is not None:
            err = abs(float(gan.pl_mean.numpy()) - float(pl_after))
            checks.append(Check(f'{label} pl_mean', err, TOL['pl_mean'], 'abs diff'))
        stored_after = trace.stored(f'step0/{phase.name}/params_after')
        if stored_after and all(k in stored_after for k in inputs[phase.module]):
            inputs[phase.module] = stored_after
        elif phase.name in reconstructed:
            inputs[phase.module] = reconstructed[phase.name]
            log(f'  isolated: the inputs after {phase.name} are the optimizer\'s replay of its recorded gradients')
        log(f'  isolated: {phase.name} done')
    return checks


def check_end_to_end(trace, log):
    """Every step through ``fit`` from the initial state."""
    import tensorflow as tf
    gan = build_gan(trace)
    tol = END_TO_END.get(trace.config['architecture'], LOOSEST)
    initial = {'G': _params(gan.G), 'D': _params(gan.D)}
    loss_err, buffer_err, pl_err, detail = 0.0, 0.0, 0.0, ''
    buffers_seen = False
    for s, facts in enumerate(trace.per_step):
        ds = tf.data.Dataset.from_tensors(trace.real_images(s))
        logs = gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0).history
        if s > 0:
            for ours_key, report in (('loss_G', 'Loss/G/loss'), ('loss_D', 'Loss/D/loss')):
                ref = next((v[report] for v in facts.get('losses', {}).values() if report in v), None)
                if ref is not None:
                    err = abs(float(logs[ours_key][-1]) - ref)
                    if err > loss_err:
                        loss_err, detail = err, f'worst: {ours_key} at step {s} ({float(logs[ours_key][-1]):.6f} vs {ref:.6f})'
        after = trace.stored(f'step{s}/after/G')
        if after:
            buffers_seen = True
            ours = {k: v.numpy() for k, v in gan.G.reference_variables().items()}
            buffer_err = max([buffer_err] + [float(np.max(np.abs(ours[k] - v))) for k, v in after.items() if k in ours])
        pl_ref = trace.get(f'step{s}/after/pl_mean')
        if pl_ref is not None:
            pl_err = max(pl_err, abs(float(gan.pl_mean.numpy()) - float(pl_ref)))
        log(f'  end to end: step {s} done')
    checks = [Check('end to end: losses of the later steps', loss_err, tol['losses'], detail)
              if len(trace.per_step) > 1 else Check('end to end: losses of the later steps', skipped='one step only'),
              Check('end to end: w_avg, magnitude_ema after every step', buffer_err, TOL['buffer'], 'max |diff|')
              if buffers_seen else Check('end to end: buffers', skipped='not in this trace')]
    if trace.get('step0/after/pl_mean') is not None:
        checks.append(Check('end to end: pl_mean after every step', pl_err, TOL['pl_mean'], 'max |diff|'))
    for name, model in (('G', gan.G), ('D', gan.D)):
        checks.append(relative_change(_params(model), trace.stored(f'final/{name}'), initial[name],
                                      f'end to end: final {name}', tol['final']))
    checks.append(relative_change(_params(gan.G_ema), trace.stored('final/G_ema'), initial['G'],
                                  'end to end: final G_ema', TOL['ema']))
    return checks


def replay(trace_dir, impl='custom', checks=CHECK_KINDS, log=print):
    """Runs the checks of ``trace_dir``; returns the list of ``Check``.

    ``impl``: 'custom' (the compiled filtered_lrelu op, which must be loaded) or 'ref' (the pure-TF path).
    """
    from afgan_tf import ops
    trace = Trace(trace_dir)
    unknown = [c for c in checks if c not in CHECK_KINDS]
    if unknown:
        raise ValueError(f'checks: unknown {unknown}; known {list(CHECK_KINDS)}')
    if impl not in ('custom', 'ref'):
        raise ValueError(f"impl must be 'custom' or 'ref', got {impl!r}")
    saved = os.environ.get(ops.FORCE_REF_ENV)
    if impl == 'ref':
        os.environ[ops.FORCE_REF_ENV] = '1'
    else:
        os.environ.pop(ops.FORCE_REF_ENV, None)
        from afgan_tf import custom_ops
        if not custom_ops.is_available():
            raise RuntimeError(f'impl custom: the filtered_lrelu op is not loaded ({custom_ops.load_error()}); build '
                               'it with `python -m afgan_tf.custom_ops.build` or replay with --impl ref')
    try:
        log(f'{trace.path}: {trace.config["architecture"]}, batch {trace.config["batch"]}, '
            f'{len(trace.per_step)} steps from {trace.per_step[0]["cur_nimg"]} images, impl {impl}')
        results = check_schedule(build_gan(trace), trace)
        reconstructed = {}
        if 'optimizer' in checks or 'isolated' in checks:
            optimizer_checks, reconstructed = check_optimizer(trace, log)
            if 'optimizer' in checks:
                results += optimizer_checks
        if 'isolated' in checks:
            results += check_isolated(trace, reconstructed, log)
        if 'end-to-end' in checks:
            results += check_end_to_end(trace, log)
    finally:
        if saved is None:
            os.environ.pop(ops.FORCE_REF_ENV, None)
        else:
            os.environ[ops.FORCE_REF_ENV] = saved
    return results


def worst(results):
    return max(results, key=lambda c: c.ratio)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m afgan_tf.training.replay', description=__doc__.split('\n\n')[0])
    parser.add_argument('trace', help='trace directory (steps.json, steps.npz, G.npz, D.npz)')
    parser.add_argument('--impl', choices=('custom', 'ref'), default='custom',
                        help='filtered_lrelu: the compiled op (default) or the pure-TF reference path')
    parser.add_argument('--checks', default=','.join(CHECK_KINDS),
                        help=f'comma-separated subset of {",".join(CHECK_KINDS)} (the schedule is always checked)')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of the table')
    args = parser.parse_args(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    log = (lambda *a, **k: None) if args.json else (lambda msg: print(msg, flush=True))
    try:
        results = replay(args.trace, args.impl, [c.strip() for c in args.checks.split(',') if c.strip()], log=log)
    except (TraceError, ValueError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    bad = worst(results)
    ok = all(c.passed for c in results)
    if args.json:
        finite = lambda x: x if not isinstance(x, float) or math.isfinite(x) else str(x)    # Strict JSON.
        print(json.dumps({'trace': str(args.trace), 'impl': args.impl, 'passed': ok, 'worst': bad.group,
                          'checks': [{k: finite(v) for k, v in dataclasses.asdict(c).items()} | {'passed': c.passed}
                                     for c in results]}))
    else:
        for c in results:
            print(c.line())
        print(f'{"passed" if ok else "FAILED"}; worst group: {bad.group} ({bad.ratio:.3g} of its tolerance)')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
