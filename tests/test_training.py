"""Training building blocks: losses, R1, blur, EMA, fit() on 1 and 2 replicas, datasets."""

import gzip
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import afgan_tf
from afgan_tf.training import augment, dataset, loss
from afgan_tf.training.gan import GAN, lazy_adam

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')


def test_loss_formulas():
    real, fake = tf.constant([2.0, -1.0]), tf.constant([0.5, -3.0])
    assert np.allclose(loss.generator_loss(fake), np.log1p(np.exp(-fake.numpy())))
    expected = np.log1p(np.exp(fake.numpy())) + np.log1p(np.exp(-real.numpy()))
    assert np.allclose(loss.discriminator_loss(real, fake), expected)


def test_r1_known_gradient():
    a = tf.constant(np.random.default_rng(0).standard_normal([1, 4, 4, 2]).astype(np.float32))
    linear_d = lambda x: tf.reduce_sum(x * a, axis=[1, 2, 3])[:, None]     # dD/dx = a for every sample.
    r1, logits = loss.r1_penalty(linear_d, tf.ones([3, 4, 4, 2]))
    assert np.allclose(r1, np.sum(a.numpy() ** 2), rtol=1e-5)
    assert np.allclose(logits, np.sum(a.numpy()), rtol=1e-5) and logits.shape == (3, 1)


def test_blur_matches_reference_taps():
    img = np.zeros([1, 41, 41, 1], np.float32)
    img[0, 20, 20, 0] = 1
    assert np.array_equal(loss.blur_images(img, 0.0), img)
    out = loss.blur_images(img, 2.0).numpy()[0, :, :, 0]
    t = np.arange(-6, 7)
    taps = np.exp2(-(t / 2.0) ** 2)
    taps /= taps.sum()
    assert np.allclose(out[14:27, 14:27], np.outer(taps, taps), atol=1e-6)
    assert np.isclose(out.sum(), 1, atol=1e-5)


def _small_gan(batch=4, arch='stylegan3-t', c_dim=0, **kwargs):
    kw = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=1, channel_base=256, channel_max=16, c_dim=c_dim)
    G = afgan_tf.Generator(arch, seed=0, **kw)
    G_ema = afgan_tf.Generator(arch, seed=0, **kw)
    D = afgan_tf.Discriminator(img_resolution=16, img_channels=1, channel_base=256, channel_max=16, c_dim=c_dim,
                               epilogue_kwargs=dict(mbstd_group_size=2))
    gan = GAN(G, D, G_ema, batch_size=batch, r1_gamma=1.0, **kwargs)
    gan.compile(g_optimizer=lazy_adam(0.0025), d_optimizer=lazy_adam(0.002, 16))
    return gan


def test_fit_one_device_updates_everything():
    gan = _small_gan(blur_init_sigma=2, blur_fade_kimg=1)
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


def test_variables_without_gradient_keep_their_adam_state():
    """PyTorch skips parameters whose grad is None: their moments must not decay (R1 and D's output bias)."""
    gan = _small_gan()
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0])
    opt = lazy_adam(0.01)
    opt.build([a, b])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(a ** 2) + tf.reduce_sum(b ** 2)
    gan._apply(opt, tape, total, [a, b])
    velocity = lambda v: opt._velocities[opt._get_variable_index(v)].numpy().copy()
    v_b, b_before = velocity(b), b.numpy().copy()
    assert v_b[0] > 0
    with tf.GradientTape() as tape:
        only_a = tf.reduce_sum(a ** 2)
    gan._apply(opt, tape, only_a, [a, b])
    assert np.array_equal(velocity(b), v_b) and np.array_equal(b.numpy(), b_before)


def test_first_step_ema_copies_g():
    """The EMA ramp-up uses the images seen before the step: at step 0, beta = 0 and G_ema = G exactly."""
    gan = _small_gan()
    for v in gan.G_ema.trainable_variables:      # Far from G: a beta of 0.5 ** 20 (one step late) would show.
        v.assign(v + 1.0)
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    gan.train_step(images)
    for src, dst in zip(gan.G.trainable_variables, gan.G_ema.trainable_variables):
        assert np.array_equal(src.numpy(), dst.numpy()), src.path


def test_loss_r1_is_logged_on_r1_steps_only():
    gan = _small_gan(r1_interval=4)
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    history = gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=5, verbose=0).history
    assert int(gan.tracker['loss_r1'].count.numpy()) == 2            # Steps 0 and 4.
    assert int(gan.tracker['loss_G'].count.numpy()) == 5
    assert history['loss_r1'][-1] > 0


def test_conditional_fake_labels_come_from_the_dataset_not_the_real_batch():
    pool = np.array([0, 1, 2, 3] * 8)
    gan = _small_gan(c_dim=4, label_pool=pool)
    seen = []
    mapping = gan._mapping

    def recording(z, c, update_emas=False):
        seen.append(c.numpy())
        return mapping(z, c, update_emas)
    gan._mapping = recording
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    real_c = tf.one_hot([0, 0, 0, 0], 4)                      # Every real image is class 0.
    for _ in range(3):
        gan.train_step((real, real_c))
    classes = np.concatenate([np.argmax(c, 1) for c in seen])
    assert all(c.shape == (4, 4) for c in seen) and len(seen) == 6
    assert len(set(classes.tolist())) >= 3, classes
    with pytest.raises(ValueError, match='label_pool'):
        _small_gan(c_dim=4)


def test_data_order_resumes_at_any_position():
    """The stream is a function of (seed, epoch, position): skipping to a step gives the same batches."""
    images = np.random.default_rng(0).integers(0, 255, [10, 4, 4, 1], dtype=np.uint8)
    labels = np.arange(10) % 3
    kw = dict(labels=labels, c_dim=3, xflip=True, seed=7)
    full = [b for b in dataset.make_dataset(images, 4, **kw).take(8)]
    for step in (1, 2, 5):
        resumed = [b for b in dataset.make_dataset(images, 4, start=step * 4, **kw).take(8 - step)]
        for (a_img, a_c), (b_img, b_c) in zip(full[step:], resumed):
            assert np.array_equal(a_img.numpy(), b_img.numpy()) and np.array_equal(a_c.numpy(), b_c.numpy())
    # Every epoch visits every image once, in an order that changes from epoch to epoch.
    order = [dataset.example_order(10, 7, e).numpy() for e in range(3)]
    assert all(sorted(o) == list(range(10)) for o in order) and not np.array_equal(order[0], order[1])


def test_ema_update_formula():
    gan = _small_gan()
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
from test_training import _small_gan
from afgan_tf.training import dataset
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'], cross_device_ops=tf.distribute.ReductionToOneDevice())
with strategy.scope():
    gan = _small_gan(batch=4)
images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
ds = strategy.distribute_datasets_from_function(lambda ctx: dataset.make_dataset(images, 4, input_context=ctx))
g0 = gan.G.trainable_variables[0].numpy().copy()
h = gan.fit(ds, epochs=1, steps_per_epoch=2, verbose=0).history
print(strategy.num_replicas_in_sync, int(gan.step.numpy()), float(gan.nimg.numpy()),
      all(np.isfinite(v[-1]) for v in h.values()), not np.allclose(g0, gan.G.trainable_variables[0].numpy()))
'''


def test_fit_two_mirrored_replicas():
    result = subprocess.run([sys.executable, '-c', TWO_REPLICAS, os.path.dirname(__file__)], capture_output=True,
                            text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-5:] == ['2', '2', '8.0', 'True', 'True']


# ----------------------------------------------------------------------------
# Datasets.

def _write_idx(path, array):
    header = b'\x00\x00\x08' + bytes([array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_reader(tmp_path):
    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    _write_idx(tmp_path / 'train-images-idx3-ubyte.gz', images)
    _write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.array([3, 7]))
    x, y = dataset.fashion_mnist(tmp_path)
    assert x.shape == (2, 28, 28, 1) and np.array_equal(x[..., 0], images) and y.tolist() == [3, 7]
    with pytest.raises(dataset.DatasetError, match='apt-get install dataset-fashion-mnist'):
        dataset.fashion_mnist(tmp_path / 'missing')


def test_convert_folder_with_corrupt_and_mixed_channels(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, [40, 30, 3], dtype=np.uint8)).save(src / f'a{i}.png')
    Image.fromarray(rng.integers(0, 255, [40, 30], dtype=np.uint8)).save(src / 'grey.png')
    (src / 'broken.png').write_bytes(b'not a png')
    logs = []
    summary = dataset.convert(src, tmp_path / 'out.zip', resolution=16, log=logs.append)
    assert summary['written'] == 5 and summary['corrupt'] == 1 and summary['wrong_channels'] == 1
    assert summary['channels'] == 3 and summary['resolution'] == 16
    assert 'skipped 1 corrupt' in logs[0]
    with zipfile.ZipFile(tmp_path / 'out.zip') as z:
        names = sorted(z.namelist())
        assert names[0] == '00000/img00000000.png' and 'dataset.json' in names
        assert json.loads(z.read('dataset.json'))['labels'] is None
    images, labels = dataset.load_images(tmp_path / 'out.zip')
    assert images.shape == (5, 16, 16, 3) and labels is None


def test_convert_refuses_mixed_sizes_without_resolution(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    Image.new('RGB', (16, 16)).save(src / 'a.png')
    Image.new('RGB', (32, 32)).save(src / 'b.png')
    with pytest.raises(dataset.DatasetError, match='different sizes'):
        dataset.convert(src, tmp_path / 'out.zip')
    assert not (tmp_path / 'out.zip').exists()
    with pytest.raises(dataset.DatasetError, match='power of two'):
        dataset.convert(src, tmp_path / 'out.zip', resolution=24)


@pytest.mark.skipif(not dataset.FASHION_MNIST_DIR.is_dir(), reason='dataset-fashion-mnist not installed')
def test_dataset_cli_fashion_mnist(tmp_path):
    dest = tmp_path / 'fm.zip'
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.dataset', '--source=fashion-mnist', f'--dest={dest}',
                        '--resolution=32', '--max_images=20'], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])['written'] == 20
    images, labels = dataset.load_images(dest)
    assert images.shape == (20, 32, 32, 1) and labels is not None and labels.max() <= 9
    again = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.dataset', '--source=fashion-mnist', f'--dest={dest}'],
                           capture_output=True, text=True, env=ENV)
    assert again.returncode != 0 and 'exists' in again.stderr


def test_make_dataset_range_labels_and_flip():
    images = np.zeros([4, 8, 8, 1], np.uint8)
    images[:, :, :4] = 255
    ds = dataset.make_dataset(images, 4, labels=np.array([0, 1, 2, 1]), c_dim=3, xflip=True, shuffle=False,
                              repeat=False)
    img, c = next(iter(ds))
    assert img.shape == (4, 8, 8, 1) and float(tf.reduce_min(img)) == -1 and float(tf.reduce_max(img)) == 1
    assert c.shape == (4, 3) and np.array_equal(np.argmax(c, 1), [0, 1, 2, 1])
    with pytest.raises(dataset.DatasetError, match='no labels'):
        dataset.make_dataset(images, 4, c_dim=3)


def test_train_cli_smoke_and_resume(tmp_path):
    """A few steps of afgan-train, then --resume continues with the same step counter."""
    data = tmp_path / 'data.zip'
    rng = np.random.default_rng(0)
    src = tmp_path / 'src'
    src.mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    dataset.convert(src, data)
    common = ['--cfg=stylegan3-t', f'--data={data}', '--batch=4', '--gamma=0.5', '--cbase=256', '--cmax=16',
              '--tick=0.008', '--snap=1', '--log_every=1']
    first = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.train', f'--outdir={tmp_path / "runs"}', *common,
                            '--kimg=0.012'], capture_output=True, text=True, env=ENV, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = next((tmp_path / 'runs').iterdir())
    assert 'kimg' in first.stdout and 'sec/kimg' in first.stdout and 'loss_G' in first.stdout
    state = json.loads((run_dir / 'state.json').read_text())
    assert state['step'] == 3
    for name in ('training_options.json', 'fakes_init.png', 'fakes_final.png', 'network-final/networks.json'):
        assert (run_dir / name).exists(), name
    assert any((run_dir / 'logs').iterdir())
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['G_kwargs']['magnitude_ema_beta'] == pytest.approx(0.5 ** (4 / 20000))
    assert options['loss_kwargs']['ema_kimg'] == pytest.approx(4 * 10 / 32)
    second = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.train', f'--outdir={tmp_path / "runs"}', *common,
                             f'--resume={run_dir}', '--kimg=0.02'], capture_output=True, text=True, env=ENV,
                            timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'resumed from' in second.stdout and 'at step 3' in second.stdout
    assert json.loads((run_dir / 'state.json').read_text())['step'] == 5
    from afgan_tf import network_io
    G = network_io.load_network(run_dir / 'network-final')['G_ema']
    z = np.random.default_rng(1).standard_normal([2, 512]).astype(np.float32)
    assert G(z).shape == (2, 16, 16, 1)
    # The run directory itself loads too (its latest checkpoint: the same weights here).
    from_run = network_io.load_network(run_dir)
    assert from_run['checkpoint'].endswith('ckpt-5')
    assert np.max(np.abs(from_run['G_ema'](z).numpy() - G(z).numpy())) < 1e-6
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.generate', f'--network={run_dir}', '--seeds=0-1',
                        f'--outdir={tmp_path / "gen"}'], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and len(list((tmp_path / 'gen').iterdir())) == 2, r.stderr[-2000:]
    bad = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.train', f'--outdir={tmp_path / "runs"}', *common,
                          '--metrics=fid50k_full,foo'], capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "unknown metric 'foo'" in bad.stderr


EXACT_TRAIN = r'''
import sys
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
sys.argv = ['afgan-train'] + sys.argv[1:]
from afgan_tf.cli import train
train.run()
'''


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """2N steps in one go vs N steps, SIGKILL, --resume for N more: the same G, D and G_ema (deterministic
    ops), so the resumed run saw the same batches, latents, augmentations and schedules."""
    import signal
    import time
    n_steps, batch = 10, 4
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    dataset.convert(src, tmp_path / 'data.zip')
    common = ['--cfg=stylegan3-t', f'--data={tmp_path / "data.zip"}', f'--batch={batch}', '--gamma=0.5',
              '--cbase=256', '--cmax=16', f'--tick={n_steps * batch / 1000}', '--snap=1', '--log_every=1',
              '--mirror', '--aug=ada', '--target=0.3', f'--kimg={2 * n_steps * batch / 1000}']
    train = [sys.executable, '-c', EXACT_TRAIN]
    whole = subprocess.run([*train, *common, f'--outdir={tmp_path / "whole"}'], capture_output=True, text=True,
                           env=ENV, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    proc = subprocess.Popen([*train, *common, f'--outdir={tmp_path / "killed"}'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            states = list((tmp_path / 'killed').glob('*/state.json'))
            if states and json.loads(states[0].read_text())['step'] == n_steps:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, 'the run ended before it could be killed mid-way'
    run_dir = next((tmp_path / 'killed').iterdir())
    resumed = subprocess.run([*train, *common, f'--outdir={tmp_path / "killed"}', f'--resume={run_dir}'],
                             capture_output=True, text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'at step {n_steps}' in resumed.stdout
    from afgan_tf import network_io
    a = network_io.load_network(next((tmp_path / 'whole').iterdir()) / 'network-final')
    b = network_io.load_network(run_dir / 'network-final')
    worst = {}
    for name in ('G', 'D', 'G_ema'):
        for va, vb in zip(a[name].weights, b[name].weights):
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(va.numpy() - vb.numpy()))))
    print('max abs difference after resume:', worst)
    assert all(v <= 1e-5 for v in worst.values()), worst


def test_sigkill_loses_at_most_one_interval(tmp_path):
    """Kill afgan-train with SIGKILL at a random (seeded, printed) moment after its first checkpoint; resume."""
    import re
    import signal
    import time
    seed = int(os.environ.get('AFGAN_TF_TEST_SEED', '1234'))
    print(f'seed {seed} (set AFGAN_TF_TEST_SEED to change it)')
    rng = np.random.default_rng(seed)
    src = tmp_path / 'src'
    src.mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    dataset.convert(src, tmp_path / 'data.zip')
    args = ['--cfg=stylegan3-t', f'--data={tmp_path / "data.zip"}', '--batch=4', '--gamma=0.5', '--cbase=256',
            '--cmax=16', '--tick=0.008', '--snap=1', '--log_every=1', f'--outdir={tmp_path / "runs"}']
    interval = 2                                      # Steps per checkpoint: tick 8 images / batch 4, snap 1.
    log = open(tmp_path / 'log.txt', 'w')
    proc = subprocess.Popen([sys.executable, '-u', '-m', 'afgan_tf.cli.train', *args, '--kimg=10'], stdout=log,
                            stderr=subprocess.STDOUT, env=ENV)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list((tmp_path / 'runs').glob('*/state.json')):
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / 'log.txt').read_text()[-2000:]
        time.sleep(float(rng.uniform(0, 3)))           # A random moment, possibly mid-checkpoint.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    steps = [int(m) for m in re.findall(r'step\s+(\d+)', (tmp_path / 'log.txt').read_text())]
    last_step = max(steps)
    run_dir = next((tmp_path / 'runs').iterdir())
    resumed = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.train', *args, f'--resume={run_dir}',
                              f'--kimg={(last_step + 4) * 4 / 1000}'], capture_output=True, text=True, env=ENV,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = re.search(r'at step (\d+)', resumed.stdout)
    assert match, resumed.stdout[-2000:]
    restored = int(match.group(1))
    assert last_step - interval <= restored <= last_step + 1, (restored, last_step)
    assert json.loads((run_dir / 'state.json').read_text())['step'] >= last_step


# ---------------------------------------------------------------------------------------------
# ADA augmentation.

def _images(channels=3, n=2, size=16, seed=0, smooth=False):
    rng = np.random.default_rng(seed)
    if not smooth:
        return tf.constant(rng.uniform(-1, 1, [n, size, size, channels]).astype(np.float32))
    t = np.arange(size) / size
    phase = rng.uniform(0, 2 * np.pi, [n, 1, 1, channels])
    img = 0.9 * np.sin(2 * np.pi * (t[None, :, None, None] + 2 * t[None, None, :, None]) + phase)
    return tf.constant(img.astype(np.float32))


def test_augment_p0_is_identity():
    x = _images()
    assert np.array_equal(augment.AugmentPipe()(x, 0.0).numpy(), x.numpy())


@pytest.mark.parametrize('name', sorted(augment.BGC))
@pytest.mark.parametrize('channels', [1, 3])
def test_each_augmentation_keeps_shape_range_and_is_differentiable(name, channels):
    pipe = augment.AugmentPipe(**{k: (1 if k == name else 0) for k in augment.BGC})
    x = _images(channels, n=8, smooth=True)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = pipe(x, 1.0, rng=tf.random.Generator.from_seed(1))
        total = tf.reduce_sum(y * tf.range(8, dtype=tf.float32)[:, None, None, None])
    g = tape.gradient(total, x)
    assert y.shape == x.shape
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(g.numpy()))
    assert np.max(np.abs(g.numpy())) > 0
    colour = name in ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')
    if colour and channels == 1 and name in ('hue', 'saturation'):
        assert np.array_equal(y.numpy(), x.numpy())        # RGB-only transforms leave grey images alone.
    elif not colour:
        # Resampling keeps values within the input range (up to the filter's small over/undershoot).
        assert np.abs(y.numpy()).max() <= 1.1 * np.abs(x.numpy()).max()
    assert not np.allclose(y.numpy(), x.numpy()) or (colour and channels == 1 and name in ('hue', 'saturation'))


def test_integer_translation_moves_content_exactly():
    pipe = augment.AugmentPipe()
    x = _images(3)
    ones = tf.ones([2])
    assert np.max(np.abs(pipe.apply_geometry(x, tf.eye(3, batch_shape=[2])).numpy() - x.numpy())) < 1e-5
    y = pipe.apply_geometry(x, augment.translate2d(3 * ones, -2 * ones)).numpy()     # out[y, x] = in[y - 2, x + 3]
    assert np.max(np.abs(y[:, 4:14, 2:10] - x.numpy()[:, 2:12, 5:13])) < 1e-5
    # The pipeline with only xint, p=1: every image is an exact integer shift of the input (interior).
    pipe = augment.AugmentPipe(**{k: (1 if k == 'xint' else 0) for k in augment.BGC})
    smooth = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    y = pipe(smooth, 1.0, rng=tf.random.Generator.from_seed(3)).numpy()
    for i in range(4):
        errs = [np.max(np.abs(np.roll(smooth.numpy()[i], (dy, dx), (0, 1))[3:13, 3:13] - y[i, 3:13, 3:13]))
                for dy in range(-2, 3) for dx in range(-2, 3)]
        assert min(errs) < 1e-5


def test_colour_transforms_exact():
    x = _images(3)
    C = augment.translate3d(tf.constant([0.25, -0.5]))              # brightness
    assert np.allclose(augment.AugmentPipe.apply_color(x, C), x.numpy() + np.array([0.25, -0.5])[:, None, None, None],
                       atol=1e-6)
    grey = _images(1)
    C = augment.scale3d(tf.constant([2.0, 0.5]))                    # contrast on grey: scales
    assert np.allclose(augment.AugmentPipe.apply_color(grey, C), grey.numpy() * np.array([2, 0.5])[:, None, None, None],
                       atol=1e-6)


def test_ada_adjust_rule():
    # sign mean above the target: p grows by batch * interval / (ada_kimg * 1000); never below 0.
    assert augment.ada_adjust(0.1, 0.9, 0.6, 32, 4, 500) == pytest.approx(0.1 + 32 * 4 / 500000)
    assert augment.ada_adjust(0.0, 0.1, 0.6, 32, 4, 500) == 0.0


@pytest.mark.parametrize('bias,direction', [(100.0, 1), (-100.0, -1)])
def test_ada_in_fit_moves_p_towards_the_target(bias, direction):
    """D's output bias forces every real logit to one sign: D 'overfits' (signs +1 > target 0.6, p grows)
    or not (signs -1, p shrinks), by one quantum batch * interval / (ada_kimg * 1000) per adjustment."""
    gan = _small_gan(augment_pipe=augment.AugmentPipe(), augment_p=0.5, ada_target=0.6, ada_interval=1, ada_kimg=40)
    gan.D.reference_variables()['b4.out.bias'].assign([bias])
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=3, verbose=0)
    quantum = 4 * 1 / (40 * 1000)
    assert float(gan.augment_p.numpy()) == pytest.approx(0.5 + direction * 3 * quantum, abs=1e-7)


def test_ada_statistic_counts_the_r1_phase_real_logits():
    """As the reference's Loss/signs/real, reported in both Dmain and Dreg."""
    gan = _small_gan(augment_pipe=augment.AugmentPipe(), ada_target=0.6, r1_interval=2)
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, [4, 16, 16, 1]).astype(np.float32))
    gan.train_step(images)                                  # Step 0: D main + R1.
    assert float(gan.ada_count.numpy()) == 8
    gan.train_step(images)                                  # Step 1: D main only.
    assert float(gan.ada_count.numpy()) == 12


def test_path_length_regularisation_in_fit():
    gan = _small_gan(arch='stylegan2', pl_weight=2.0, pl_interval=1)
    images = (np.random.default_rng(0).random([16, 16, 16, 1]) * 255).astype(np.uint8)
    history = gan.fit(dataset.make_dataset(images, 4), epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history['pl_penalty'][-1]) and history['loss_pl'][-1] >= 0
    assert float(gan.pl_mean.numpy()) > 0


def test_path_length_penalty_formula():
    # synthesize(ws) = ws . a (a linear "generator"): J^T y is known in closed form.
    a = tf.constant(np.random.default_rng(0).standard_normal([3, 4]).astype(np.float32))
    synth = lambda ws: tf.einsum('nkd,kd->n', ws, a)[:, None, None, None] * tf.ones([1, 2, 2, 1])
    ws = tf.ones([5, 3, 4])
    pl_mean = tf.Variable(0.0)
    rng = tf.random.Generator.from_seed(0)
    pen = loss.path_length_penalty(synth, ws, pl_mean, 0.5, rng).numpy()
    noise = tf.random.Generator.from_seed(0).normal([5, 2, 2, 1]).numpy() / 2
    s = noise.sum(axis=(1, 2, 3))                                    # J^T y = a * sum(y)
    lengths = np.sqrt(np.mean(np.sum((s[:, None, None] * a.numpy()[None]) ** 2, 2), 1))
    mean = 0.5 * lengths.mean()
    assert np.allclose(pen, (lengths - mean) ** 2, rtol=1e-5)
    assert float(pl_mean.numpy()) == pytest.approx(mean, rel=1e-5)


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_multi_worker_mirrored_strategy_two_local_workers(tmp_path):
    """afgan-train --multiworker in 2 processes on 127.0.0.1 (TF_CONFIG): same losses, same weights."""
    data = tmp_path / 'data.zip'
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    dataset.convert(src, data)
    ports = [_free_port(), _free_port()]
    procs = []
    for index in range(2):
        tf_config = {'cluster': {'worker': [f'127.0.0.1:{p}' for p in ports]}, 'task': {'type': 'worker', 'index': index}}
        env = dict(ENV, TF_CONFIG=json.dumps(tf_config), TMPDIR=str(tmp_path))
        procs.append(subprocess.Popen(
            [sys.executable, '-m', 'afgan_tf.cli.train', '--multiworker', f'--outdir={tmp_path / "runs"}',
             f'--data={data}', '--batch=4', '--gamma=0.5', '--cbase=256', '--cmax=16', '--tick=0.008', '--snap=1',
             '--log_every=1', '--kimg=0.008'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-2000:] + outs[1][-2000:]
    assert all('2 replica(s)' in o for o in outs)
    losses = [[line.split('loss_G')[1].split()[0] for line in o.splitlines() if line.startswith('kimg')] for o in outs]
    assert losses[0] == losses[1] and len(losses[0]) == 2
    from afgan_tf import network_io
    chief = next((tmp_path / 'runs').iterdir())                 # Only the chief writes into --outdir.
    assert len(list((tmp_path / 'runs').iterdir())) == 1 and 'replicas2' in chief.name
    other = next(tmp_path.glob('afgan_worker_*/*'))
    a, b = network_io.load_network(chief / 'network-final'), network_io.load_network(other / 'network-final')
    # Gradients are all-reduced: every trained parameter is identical on both workers. (Moving-average
    # buffers such as magnitude_ema follow each worker's local batch, as with the reference's DDP.)
    for name in ('G', 'D', 'G_ema'):
        for va, vb in zip(a[name].trainable_variables, b[name].trainable_variables):
            assert np.max(np.abs(va.numpy() - vb.numpy())) < 1e-6, (name, va.path)


def test_checkpoint_restores_augment_p_and_rng(tmp_path):
    gan = _small_gan(augment_pipe=augment.AugmentPipe(), augment_p=0.3)
    gan.rng.normal([3])
    ckpt = tf.train.Checkpoint(augment_p=gan.augment_p, rng=gan.rng, step=gan.step)
    path = ckpt.save(tmp_path / 'ckpt')
    expected = gan.rng.normal([3]).numpy()
    other = _small_gan(augment_pipe=augment.AugmentPipe())
    tf.train.Checkpoint(augment_p=other.augment_p, rng=other.rng, step=other.step).restore(path)
    assert float(other.augment_p.numpy()) == pytest.approx(0.3)
    assert np.array_equal(other.rng.normal([3]).numpy(), expected)
