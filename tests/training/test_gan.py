"""afgan_tf.training.gan: the GAN's training step (EMA, lazy R1, ADA, labels, gradients) on 1 and 2 replicas."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf.training import augment, dataset

from conftest import ENV, small_gan, tiny_data


def test_fit_one_device_updates_everything():
    gan = small_gan(blur_init_sigma=2, blur_fade_kimg=1)
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    g0 = [v.numpy().copy() for v in gan.G.trainable_variables]
    d0 = [v.numpy().copy() for v in gan.D.trainable_variables]
    e0 = [v.numpy().copy() for v in gan.G_ema.trainable_variables]
    history = gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=2, verbose=0).history
    for name in ('loss_G', 'loss_D', 'loss_r1'):
        assert np.isfinite(history[name][-1]), name
    assert history['loss_r1'][-1] > 0                       # Step 0 ran the lazy R1.
    assert int(gan.step.numpy()) == 2 and float(gan.nimg.numpy()) == 8
    changed = lambda before, now: any(not np.allclose(b, v.numpy()) for b, v in zip(before, now))
    assert changed(g0, gan.G.trainable_variables) and changed(d0, gan.D.trainable_variables)
    assert changed(e0, gan.G_ema.trainable_variables)
    assert float(gan.blur_sigma()) < 2                     # The blur fades with nimg.


def test_nan_to_num_of_gradients_as_the_reference():
    from afgan_tf.training.gan import nan_to_num
    g = tf.constant([np.nan, np.inf, -np.inf, 2e5, -3.0], tf.float32)
    assert np.array_equal(nan_to_num(g).numpy(), np.array([0, 1e5, -1e5, 2e5, -3.0], np.float32))


def test_first_step_ema_copies_g():
    """The EMA ramp-up uses the images seen before the step: at step 0, beta = 0 and G_ema = G exactly."""
    gan = small_gan()
    for v in gan.G_ema.trainable_variables:      # Far from G: a beta of 0.5 ** 20 (one step late) would show.
        v.assign(v + 1.0)
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    gan.train_step(images)
    for src, dst in zip(gan.G.trainable_variables, gan.G_ema.trainable_variables):
        assert np.array_equal(src.numpy(), dst.numpy()), src.path


def test_loss_r1_is_logged_on_r1_steps_only():
    gan = small_gan(r1_interval=4)
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    history = gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=5, verbose=0).history
    assert int(gan.tracker['loss_r1'].count.numpy()) == 2            # Steps 0 and 4.
    assert int(gan.tracker['loss_G'].count.numpy()) == 5
    assert history['loss_r1'][-1] > 0


def test_conditional_fake_labels_come_from_the_dataset_not_the_real_batch():
    pool = np.array([0, 1, 2, 3] * 8)
    gan = small_gan(c_dim=4, label_pool=pool)
    seen = []
    mapping = gan._mapping

    def recording(phase, z, c, update_emas=False):
        seen.append(c.numpy())
        return mapping(phase, z, c, update_emas)
    gan._mapping = recording
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    real_c = tf.one_hot([0, 0, 0, 0], 4)                      # Every real image is class 0.
    for _ in range(3):
        gan.train_step((real, real_c))
    classes = np.concatenate([np.argmax(c, 1) for c in seen])
    assert all(c.shape == (4, 4) for c in seen) and len(seen) == 6
    assert len(set(classes.tolist())) >= 3, classes
    with pytest.raises(ValueError, match='label_pool'):
        small_gan(c_dim=4)


def test_ema_update_formula():
    gan = small_gan()
    for v in gan.G.trainable_variables:
        v.assign(v + 1.0)
    gan.nimg.assign(1e9)                                    # Past the ramp-up.
    before = [v.numpy().copy() for v in gan.G_ema.trainable_variables]
    beta = float(gan.ema_beta())
    assert np.isclose(beta, 0.5 ** (4 / (4 * 10 / 32 * 1000)))
    gan._update_ema()
    for b, src, dst in zip(before, gan.G.trainable_variables, gan.G_ema.trainable_variables):
        assert np.allclose(dst.numpy(), src.numpy() + (b - src.numpy()) * beta, atol=1e-6)
    # Buffers are copied, not averaged.
    assert np.array_equal(gan.G_ema.mapping.w_avg.numpy(), gan.G.mapping.w_avg.numpy())


TWO_REPLICAS = r'''
import os, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from conftest import small_gan
from afgan_tf.training import dataset
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'], cross_device_ops=tf.distribute.ReductionToOneDevice())
with strategy.scope():
    gan = small_gan(batch=4)
images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
ds = strategy.distribute_datasets_from_function(lambda ctx: dataset.make_dataset(images, 4, input_context=ctx))
g0 = gan.G.trainable_variables[0].numpy().copy()
h = gan.fit(ds, epochs=1, steps_per_epoch=2, verbose=0).history
print(strategy.num_replicas_in_sync, int(gan.step.numpy()), float(gan.nimg.numpy()),
      all(np.isfinite(v[-1]) for v in h.values()), not np.allclose(g0, gan.G.trainable_variables[0].numpy()))
'''


def test_fit_two_mirrored_replicas():
    tests_dir = os.path.dirname(os.path.dirname(__file__))
    result = subprocess.run([sys.executable, '-c', TWO_REPLICAS, tests_dir], capture_output=True,
                            text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-5:] == ['2', '2', '8.0', 'True', 'True']


def test_ada_in_fit_moves_p_towards_the_target():
    """D's output bias forces every real logit to one sign: D 'overfits' (signs +1 > target 0.6, p grows)
    or not (signs -1, p shrinks), by one quantum batch * interval / (ada_kimg * 1000) per adjustment."""
    gan = small_gan(augment_pipe=augment.AugmentPipe(), augment_p=0.5, ada_target=0.6, ada_interval=1, ada_kimg=40)
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    quantum = 4 * 1 / (40 * 1000)
    expected = 0.5
    for bias, direction in ((100.0, 1), (-100.0, -1)):
        gan.D.reference_variables()['b4.out.bias'].assign([bias])
        gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=3, verbose=0)
        expected += direction * 3 * quantum
        assert float(gan.augment_p.numpy()) == pytest.approx(expected, abs=1e-7), bias


def test_ada_statistic_counts_the_r1_phase_real_logits():
    """As the reference's Loss/signs/real, reported in both Dmain and Dreg."""
    gan = small_gan(augment_pipe=augment.AugmentPipe(), ada_target=0.6, r1_interval=2)
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    gan.train_step(images)                                  # Step 0: D main + R1.
    assert float(gan.ada_count.numpy()) == 8
    gan.train_step(images)                                  # Step 1: D main only.
    assert float(gan.ada_count.numpy()) == 12


def test_path_length_regularisation_in_fit():
    gan = small_gan(arch='stylegan2', pl_weight=2.0, pl_interval=1)
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    history = gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history['pl_penalty'][-1]) and history['loss_pl'][-1] >= 0
    assert float(gan.pl_mean.numpy()) > 0


def test_checkpoint_restores_augment_p_and_rng(tmp_path):
    gan = small_gan(augment_pipe=augment.AugmentPipe(), augment_p=0.3)
    gan.rng.normal([3])
    ckpt = tf.train.Checkpoint(augment_p=gan.augment_p, rng=gan.rng, step=gan.step)
    path = ckpt.save(tmp_path / 'ckpt')
    expected = gan.rng.normal([3]).numpy()
    other = small_gan(augment_pipe=augment.AugmentPipe())
    tf.train.Checkpoint(augment_p=other.augment_p, rng=other.rng, step=other.step).restore(path)
    assert float(other.augment_p.numpy()) == pytest.approx(0.3)
    assert np.array_equal(other.rng.normal([3]).numpy(), expected)


@pytest.mark.parametrize('precision', ['bfloat16', 'float16'])
def test_reduced_precision_training_steps_are_finite(precision, tmp_path):
    import keras

    from afgan_tf import training
    from afgan_tf.training.training_loop import build_gan
    options = training.training_options(cfg='stylegan3-t', data=tiny_data(tmp_path), gamma=0.5, batch=4, cbase=256,
                                        cmax=16, precision=precision)
    assert options['G_kwargs']['num_fp16_res'] == 4 and options['G_kwargs']['conv_clamp'] == 256
    gan = build_gan(options)
    scaled = isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == 'float16')                      # Dynamic loss scaling with float16 only.
    d0 = [v.numpy().copy() for v in gan.D.trainable_variables]
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    history = gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=3, verbose=0).history
    for name in ('loss_G', 'loss_D', 'loss_r1'):
        assert np.isfinite(history[name][-1]), (precision, name)
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(d0, gan.D.trainable_variables))
    assert all(v.dtype == 'float32' for v in gan.G.weights + gan.D.weights)   # Weights stay float32.


def test_phases_run_in_nvidias_order():
    """NVIDIA's loop: G phases before D phases, each module's main phase before its lazy one (StyleGAN2's path
    length used to run after the D phases, so D saw fakes of a G without its Greg update)."""
    gan = small_gan(arch='stylegan2', pl_weight=2.0, pl_interval=4, r1_interval=16)
    assert [(p.name, p.interval) for p in gan.phases] == [('Gmain', 1), ('Greg', 4), ('Dmain', 1), ('Dreg', 16)]
    applied = []
    apply = gan.apply_phase_gradients
    gan.apply_phase_gradients = lambda phase, grads: (applied.append(phase.name), apply(phase, grads))
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    gan.train_step(images)
    gan.train_step(images)
    assert applied == ['Gmain', 'Greg', 'Dmain', 'Dreg', 'Gmain', 'Dmain']
    sg3 = small_gan(r1_interval=None)                 # No lazy regularisation: one 'both' phase per module.
    assert [p.name for p in sg3.phases] == ['Gboth', 'Dboth']
    assert [p.name for p in small_gan().phases_at(0)] == ['Gboth', 'Dmain', 'Dreg']


def test_every_draw_comes_from_the_source():
    """A recorded source makes two GANs with different seeds take the same step; other recordings another."""
    from afgan_tf.training.randomness import RecordedSource
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    rng = np.random.default_rng(1)
    latents = {name: rng.standard_normal([1, 4, 16]).astype(np.float32) for name in ('Gmain', 'Greg', 'Dmain')}
    mixing = {name: (np.array([3]), rng.standard_normal([1, 4, 16]).astype(np.float32)) for name in latents}
    pl_noise = {'Greg': rng.standard_normal([1, 2, 16, 16, 1]).astype(np.float32)}

    def step(seed, latents):
        gan = small_gan(arch='stylegan2', pl_weight=2.0, pl_interval=1, style_mixing_prob=0.5, seed=seed)
        noise = [(v, np.full(v.shape, 0.5, np.float32)) for k, v in gan.G.reference_variables().items()
                 if k.endswith('noise_const')]
        gan.source = RecordedSource(gan.step, latents=latents, mixing=mixing, path_length_noise=pl_noise, noise=noise)
        gan.train_step(images)
        return np.concatenate([v.numpy().ravel() for v in gan.G.trainable_variables + gan.D.trainable_variables])
    assert np.array_equal(step(0, latents), step(5, latents))
    other = {k: v + 0.1 for k, v in latents.items()}
    assert not np.allclose(step(0, latents), step(0, other))
    with pytest.raises(ValueError, match='augmentation'):
        RecordedSource(tf.Variable(0, dtype=tf.int64)).augment_rng('Dmain')


def _weights(gan):
    return np.concatenate([v.numpy().ravel() for v in gan.G.trainable_variables + gan.D.trainable_variables +
                           gan.G_ema.trainable_variables])


def test_batch_gpu_equal_to_the_batch_is_bit_identical():
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    runs = []
    for batch_gpu in (None, 4):
        gan = small_gan(batch_gpu=batch_gpu)
        gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=2, verbose=0)
        runs.append(_weights(gan))
    assert np.array_equal(*runs)


def test_batch_gpu_rounds_accumulate_as_nvidias_loop():
    """Rounds of 2 of a batch of 4 give, with the same draws and no minibatch-std coupling of samples (group 1),
    the sum of the rounds' mean gradients: twice those of one pass (NVIDIA accumulates each round's mean), and
    the same reports. Adam's step is then the same to float precision (it is scale invariant up to epsilon).
    (With magnitude EMAs on, each round's Dmain moves them, so later rounds differ slightly, as in NVIDIA's.)"""
    from afgan_tf.training.randomness import RecordedSource
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    rng = np.random.default_rng(1)
    latents = {name: rng.standard_normal([1, 4, 16]).astype(np.float32) for name in ('Gboth', 'Dmain', 'Dreg')}
    grads, reports = {}, {}
    for batch_gpu in (None, 2):
        gan = small_gan(batch_gpu=batch_gpu)
        gan.D.net.b4.mbstd_group_size = 1                # No coupling of samples across rounds, and no moving
        for name in gan.G.synthesis.layer_names:          # averages updated by each round's Dmain fakes.
            getattr(gan.G.synthesis, name).magnitude_ema_beta = 1.0
        gan.source = RecordedSource(gan.step, latents=latents)
        for phase in gan.phases_at(0):
            g, r = gan.phase_gradients(phase, images)
            grads[(batch_gpu, phase.name)] = [None if x is None else x.numpy() for x in g]
            reports[(batch_gpu, phase.name)] = {k: v.numpy() for k, v in r.items()}
    for phase in ('Gboth', 'Dmain', 'Dreg'):
        for one, two in zip(grads[(None, phase)], grads[(2, phase)]):
            assert (one is None) == (two is None)
            if one is not None:
                np.testing.assert_allclose(two, 2 * one, rtol=2e-4, atol=1e-6 * np.max(np.abs(one)) + 1e-12)
        for key, value in reports[(None, phase)].items():
            np.testing.assert_allclose(reports[(2, phase)][key], value, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='batch_gpu'):
        small_gan(batch_gpu=3).phase_gradients(gan.phases[0], images)
