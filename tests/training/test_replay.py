"""afgan_tf.training.replay: NVIDIA's recorded training steps replayed through our training step.

The traces are the trimmed copies in tests/data/reference/training_steps/ (see make_reference.py);
each planted deviation below is one the replay must catch.
"""

import json

import keras
import numpy as np
import pytest

from afgan_tf.training import gan as gan_lib
from afgan_tf.training import optimizers, replay

from conftest import require_custom_op

TRACES = ['stylegan3-t_32', 'stylegan3-r_32', 'stylegan2_32']
QUIET = lambda message: None


def trace(reference_dir, name):
    return reference_dir / 'training_steps' / name


def failed(results):
    return {c.group: c.value for c in results if not c.passed}


# Every case runs the isolated phases (G's gradients through the op or the reference path) and the optimizer.
# Three steps of fit end to end (minutes on CI) run twice: StyleGAN3-T with the fused op, and StyleGAN2, which
# has no filtered leaky ReLU and runs once; StyleGAN3-R's end to end is left to the replay tool (README).
CASES = [(n, 'custom') for n in TRACES[:2]] + [(n, 'ref') for n in TRACES[:2]] + [(TRACES[2], 'ref')]


@pytest.mark.parametrize('name,impl', CASES)
def test_replay_matches_nvidias_training_steps(reference_dir, name, impl):
    if impl == 'custom':
        require_custom_op()
    full = (name, impl) in (('stylegan3-t_32', 'custom'), ('stylegan2_32', 'ref'))
    checks = replay.CHECK_KINDS if full else ('isolated', 'optimizer')
    results = replay.replay(trace(reference_dir, name), impl, checks=checks, log=QUIET)
    assert not failed(results), '\n'.join(c.line() for c in results)
    checked = {c.group for c in results if not c.skipped}
    phases = json.loads((trace(reference_dir, name) / 'steps.json').read_text())['per_step'][0]['phases_run']
    for phase in phases:
        assert {f'isolated: step-0 {phase} gradients', f'isolated: step-0 {phase} reported values'} <= checked
    last_D = [p for p in phases if p.startswith('D')][-1]
    assert {f'optimizer: D after step-0 {last_D}', 'schedule: phases per step', 'schedule: EMA beta'} <= checked
    if 'end-to-end' in checks:
        assert {'end to end: final G', 'end to end: final D', 'end to end: losses of the later steps',
                'end to end: w_avg, magnitude_ema after every step'} <= checked
    assert replay.worst(results).ratio < 1


def _keras_adam(learning_rate, reg_interval=None, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return keras.optimizers.Adam(learning_rate=learning_rate * ratio, beta_1=beta_1 ** ratio, beta_2=beta_2 ** ratio,
                                 epsilon=epsilon)


def _no_beta2_ratio(learning_rate, reg_interval=None, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    return optimizers.Adam(learning_rate=learning_rate * ratio, beta_1=beta_1 ** ratio, beta_2=beta_2, epsilon=epsilon)


def _split_adam_state(self, phase, grads):
    """One Adam state per phase instead of one per module."""
    if phase.name.endswith('reg'):
        own = self.__dict__.setdefault('_per_phase', {})
        if phase.name not in own:
            base = self.d_optimizer if phase.module == 'D' else self.g_optimizer
            own[phase.name] = optimizers.Adam.from_config(base.get_config())
            own[phase.name].build((self.D if phase.module == 'D' else self.G).trainable_variables)
        saved = (self.g_optimizer, self.d_optimizer)
        self.g_optimizer = self.d_optimizer = own[phase.name]
        try:
            return _APPLY(self, phase, grads)
        finally:
            self.g_optimizer, self.d_optimizer = saved
    return _APPLY(self, phase, grads)


_APPLY = gan_lib.GAN.apply_phase_gradients


@pytest.mark.parametrize('name', ['stylegan3-r_32', 'stylegan2_32'])
@pytest.mark.parametrize('deviation', ['keras_adam', 'beta2_without_mb_ratio', 'adam_state_per_phase'])
def test_replay_catches_planted_deviations(reference_dir, monkeypatch, name, deviation):
    """The optimizer check fails for each deviation (NVIDIA's README measures them at 1.4e-4 and more, against
    3e-5) in the D state after step 0, where D's Adam takes its steps t = 1 and 2."""
    if deviation == 'keras_adam':
        monkeypatch.setattr(optimizers, 'lazy_adam', _keras_adam)
    elif deviation == 'beta2_without_mb_ratio':
        monkeypatch.setattr(optimizers, 'lazy_adam', _no_beta2_ratio)
    else:
        monkeypatch.setattr(gan_lib.GAN, 'apply_phase_gradients', _split_adam_state)
    results = replay.replay(trace(reference_dir, name), 'ref', checks=('optimizer',), log=QUIET)
    bad = failed(results)
    last_D = [c.group for c in results if c.group.startswith('optimizer: D after step-0')][-1]
    assert last_D in bad, '\n'.join(c.line() for c in results)
    assert not replay.worst(results).passed


def test_replay_cli_json_and_exit_codes(reference_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(optimizers, 'lazy_adam', _keras_adam)
    code = replay.main([str(trace(reference_dir, 'stylegan2_32')), '--impl', 'ref', '--checks', 'optimizer', '--json'])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out['passed'] is False and out['worst'].startswith('optimizer: D after')
    assert all({'group', 'value', 'tolerance', 'passed'} <= set(c) for c in out['checks'])
    (tmp_path / 'steps.json').write_text('{}')
    assert replay.main([str(tmp_path)]) == 2
    assert 'not a training-step trace' in capsys.readouterr().err
    assert replay.main([str(trace(reference_dir, 'stylegan2_32')), '--checks', 'bogus']) == 2


def test_recorded_noise_and_latents_reach_the_step(reference_dir):
    """The recorded source feeds the trace's draws: z rows by phase, StyleGAN2's noise_const as its noise."""
    t = replay.Trace(trace(reference_dir, 'stylegan2_32'))
    gan = replay.build_gan(t)
    rows = t.config['phases'][1]['gen_z_rows']
    z = gan.source.latents('Greg', 4, gan.G.z_dim).numpy()
    assert np.array_equal(z, t.arrays['step0/all_gen_z'][rows[0]:rows[0] + 4])
    layer = gan.G.synthesis.b8.conv0
    noise = gan.source.noise('Dmain', [2, 8, 8, 1], key=layer.noise_const).numpy()
    assert np.array_equal(noise[1, :, :, 0], t.G_state['synthesis.b8.conv0.noise_const'])
    cutoff, mix_z = gan.source.mixing('Dmain', 9, gan.G.z_dim, gan.G.num_ws, 0.9)
    assert int(cutoff) == int(t.arrays['step0/Dmain/mix_cutoff'])
