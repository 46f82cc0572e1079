"""afgan-train: smoke run, exact resume, kills, damaged checkpoints, moved data, unwritable run
directories, multi-worker training and new presets."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from afgan_tf.training import dataset

from conftest import ENV, TINY, free_port, tiny_data, tool, train_cli

EXTRA_PRESET = r'''
import dataclasses, sys
from afgan_tf import networks
# A new architecture is one record: StyleGAN3-T with a 1-layer mapping and other training defaults.
networks.register_preset(dataclasses.replace(networks.PRESETS['stylegan3-t'], name='stylegan3-t-tiny',
                                             mapping_kwargs=dict(num_layers=1), G_lr=0.001, style_mixing_prob=0.5))
sys.argv = ['afgan-train'] + sys.argv[1:]
from afgan_tf.cli import train
train.run()
'''


def test_a_registered_preset_trains_through_the_cli(tmp_path):
    """Adding an architecture touches only its record: the CLI, options and training read it."""
    import dataclasses

    from afgan_tf import network_io, networks
    data = tiny_data(tmp_path)
    r = train_cli('--cfg=stylegan3-t-tiny', *TINY[1:], f'--data={data}', f'--outdir={tmp_path / "runs"}',
                  '--kimg=0.004', code=EXTRA_PRESET)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = next((tmp_path / 'runs').iterdir())
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert run_dir.name.split('-')[1:5] == ['stylegan3', 't', 'tiny', 'data']
    assert options['G_lr'] == 0.001 and options['loss_kwargs']['style_mixing_prob'] == 0.5
    assert options['G_kwargs']['mapping_kwargs'] == {'num_layers': 1}
    assert json.loads((run_dir / 'state.json').read_text())['step'] == 1
    networks.register_preset(dataclasses.replace(networks.PRESETS['stylegan3-t'], name='stylegan3-t-tiny',
                                                 mapping_kwargs=dict(num_layers=1)))
    try:
        G = network_io.load_network(run_dir / 'network-final')['G_ema']
        assert G.architecture == 'stylegan3-t-tiny' and G.mapping.num_layers == 1
    finally:
        networks.PRESETS.pop('stylegan3-t-tiny')
    bad = train_cli('--cfg=stylegan9', *TINY[1:], f'--data={data}', f'--outdir={tmp_path / "runs"}')
    assert bad.returncode == 2 and "--cfg must be one of ['stylegan2', 'stylegan3-r', 'stylegan3-t']" in bad.stderr


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
    # The uninterrupted run and the one to kill run side by side (tracing is single-threaded).
    whole = subprocess.Popen([*train, *common, f'--outdir={tmp_path / "whole"}'], stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / 'whole.log', 'w'), env=ENV)
    proc = subprocess.Popen([*train, *common, f'--outdir={tmp_path / "killed"}'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 450
        while time.time() < deadline and proc.poll() is None:
            states = list((tmp_path / 'killed').glob('*/state.json'))
            if states and json.loads(states[0].read_text())['step'] == n_steps:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
        whole.wait(timeout=450)
    finally:
        for p in (proc, whole):
            if p.poll() is None:
                p.kill()
    assert whole.returncode == 0, (tmp_path / 'whole.log').read_text()[-3000:]
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
            '--cmax=16', '--tick=0.008', '--snap=1', '--log_every=1', '--aug=noaug', f'--outdir={tmp_path / "runs"}']
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
    resumed = tool('train', *args, f'--resume={run_dir}', f'--kimg={(last_step + 4) * 4 / 1000}')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = re.search(r'at step (\d+)', resumed.stdout)
    assert match, resumed.stdout[-2000:]
    restored = int(match.group(1))
    assert last_step - interval <= restored <= last_step + 1, (restored, last_step)
    assert json.loads((run_dir / 'state.json').read_text())['step'] >= last_step


def test_multi_worker_mirrored_strategy_two_local_workers(tmp_path):
    """afgan-train --multiworker in 2 processes on 127.0.0.1 (TF_CONFIG): same losses, same weights."""
    data = tmp_path / 'data.zip'
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    dataset.convert(src, data)
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        tf_config = {'cluster': {'worker': [f'127.0.0.1:{p}' for p in ports]},
                     'task': {'type': 'worker', 'index': index}}
        env = dict(ENV, TF_CONFIG=json.dumps(tf_config), TMPDIR=str(tmp_path))
        procs.append(subprocess.Popen(
            [sys.executable, '-m', 'afgan_tf.cli.train', '--multiworker', f'--outdir={tmp_path / "runs"}',
             f'--data={data}', '--batch=4', '--gamma=0.5', '--cbase=256', '--cmax=16', '--tick=0.008', '--snap=1',
             '--log_every=1', '--kimg=0.008', '--aug=noaug'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
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


def test_train_resume_after_a_damaged_checkpoint_and_tools_on_the_run(tmp_path):
    """A run's outputs; --resume skips a damaged newest checkpoint (saying why), removes what a kill
    during a save left, and continues from the newest intact one; tools read the run directory."""
    from afgan_tf import network_io
    data = tiny_data(tmp_path)
    first = train_cli(*TINY, f'--data={data}', f'--outdir={tmp_path / "runs"}', '--kimg=0.024')
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'kimg' in first.stdout and 'sec/kimg' in first.stdout and 'loss_G' in first.stdout
    run_dir = next((tmp_path / 'runs').iterdir())
    assert json.loads((run_dir / 'state.json').read_text())['step'] == 6
    for name in ('training_options.json', 'fakes_init.png', 'fakes_final.png', 'network-final/networks.json'):
        assert (run_dir / name).exists(), name
    assert any((run_dir / 'logs').iterdir())
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['G_kwargs']['magnitude_ema_beta'] == pytest.approx(0.5 ** (4 / 20000))
    assert options['loss_kwargs']['ema_kimg'] == pytest.approx(4 * 10 / 32)
    newest = sorted((run_dir / 'checkpoints').glob('ckpt-*.index'), key=lambda p: int(p.stem.split('-')[1]))[-1]
    assert newest.stem == 'ckpt-6'
    data_file = next(newest.parent.glob(newest.stem + '.data-*'))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])      # Truncated.
    (run_dir / 'checkpoints' / 'ckpt-99_temp').mkdir()                                   # A kill during a save.
    resumed = train_cli(f'--resume={run_dir}', '--kimg=0.032')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'skipping checkpoint ckpt-6' in resumed.stdout and 'cannot be read' in resumed.stdout
    assert 'ckpt-4 at step 4' in resumed.stdout                    # The newest intact one.
    assert 'removed ckpt-99_temp' in resumed.stdout and not (run_dir / 'checkpoints' / 'ckpt-99_temp').exists()
    assert json.loads((run_dir / 'state.json').read_text())['step'] == 8
    G = network_io.load_network(run_dir / 'network-final')['G_ema']
    z = np.random.default_rng(1).standard_normal([2, 512]).astype(np.float32)
    assert G(z).shape == (2, 16, 16, 1)
    from_run = network_io.load_network(run_dir)            # The run directory: its newest checkpoint.
    assert from_run['checkpoint'].endswith('ckpt-8')
    assert np.max(np.abs(from_run['G_ema'](z).numpy() - G(z).numpy())) < 1e-6
    r = tool('generate', f'--network={run_dir}', '--seeds=0-1', f'--outdir={tmp_path / "gen"}')
    assert r.returncode == 0 and len(list((tmp_path / 'gen').iterdir())) == 2, r.stderr[-2000:]
    bad = train_cli(*TINY, f'--data={data}', f'--outdir={tmp_path / "runs"}', '--metrics=fid50k_full,foo')
    assert bad.returncode == 2 and "unknown metric 'foo'" in bad.stderr


def test_resume_checks_the_run_files_and_the_dataset_and_follows_a_moved_dataset(tmp_path):
    """--resume refuses malformed run files and a replaced dataset (clear errors, no traceback), needs only
    the run directory, and follows a dataset given its new place. One short run serves every check."""
    import shutil

    from afgan_tf.training.training_loop import RunDir, check_options
    data = tiny_data(tmp_path / 'a')
    first = train_cli(*TINY, f'--data={data.relative_to(tmp_path)}', '--outdir=runs', '--kimg=0.008', cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = next((tmp_path / 'runs').iterdir())
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['data'] == str(data.resolve())                  # Stored absolute.
    for change, message in (({'batch_size': 0}, 'batch_size must be an integer >= 1'),
                            ({'batch_size': -8}, 'batch_size must be'), ({'total_kimg': float('inf')}, 'total_kimg'),
                            ({'total_kimg': float('nan')}, 'total_kimg'), ({'tick_kimg': 0}, 'tick_kimg'),
                            ({'snap': 0}, 'snap must be'), ({'data': None}, 'data must be'),
                            ({'G_kwargs': [1]}, 'G_kwargs must be an object')):
        with pytest.raises(ValueError, match=message):
            check_options({**options, **change})
    with pytest.raises(ValueError, match="has no 'data'"):
        check_options({k: v for k, v in options.items() if k != 'data'})
    with pytest.raises(ValueError, match='must hold a JSON object, got list'):
        check_options([options])
    good = (run_dir / 'training_options.json').read_text()
    (run_dir / 'training_options.json').write_text('[1, 2]')
    r = train_cli(f'--resume={run_dir}')
    assert r.returncode == 2 and 'must hold a JSON object' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    (run_dir / 'training_options.json').write_text(json.dumps({**options, 'data': '/etc'}))
    r = train_cli(f'--resume={run_dir}')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    (run_dir / 'training_options.json').write_text(good)
    state = (run_dir / 'state.json').read_text()
    (run_dir / 'state.json').write_text('{"train_seconds": "soon"}')
    with pytest.raises(ValueError, match='finite train_seconds'):
        RunDir(run_dir).read_state()
    (run_dir / 'state.json').write_text(state)
    original = data.read_bytes()
    shutil.copyfile(tiny_data(tmp_path / 'b', seed=3), data)          # Another dataset at the same path.
    r = train_cli(f'--resume={run_dir}', '--kimg=0.016')
    assert r.returncode == 2 and 'was replaced' in r.stderr, r.stderr[-2000:]
    data.write_bytes(original)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    moved = tmp_path / 'm' / 'moved.zip'
    moved.parent.mkdir()
    data.rename(moved)
    gone = train_cli(f'--resume={run_dir}', '--kimg=0.016')
    assert gone.returncode == 2 and 'is gone; give its new place with --data' in gone.stderr
    other = tiny_data(tmp_path / 'c', seed=1)
    refused = train_cli(f'--resume={run_dir}', f'--data={other}', '--kimg=0.016')
    assert refused.returncode == 2 and 'is not the dataset this run trained on' in refused.stderr
    # Only the run directory (and the dataset's new place), from another working directory.
    follows = train_cli(f'--resume={run_dir}', f'--data={moved}', '--kimg=0.016', cwd=elsewhere)
    assert follows.returncode == 0 and 'the dataset moved' in follows.stdout, follows.stderr[-3000:]
    assert 'at step 2' in follows.stdout and json.loads((run_dir / 'state.json').read_text())['step'] == 4
    fresh = train_cli('--data=x.zip')
    assert fresh.returncode == 2 and 'a new run needs --outdir, --gamma' in fresh.stderr


UNWRITABLE = r'''
import sys
import tensorflow as tf
save = tf.train.CheckpointManager.save
calls = []
def failing_save(self, *args, **kwargs):      # The run directory turns read-only after the first checkpoint.
    calls.append(1)
    if len(calls) > 1:
        raise tf.errors.PermissionDeniedError(None, None, 'checkpoints/ckpt-4_temp: Permission denied')
    return save(self, *args, **kwargs)
tf.train.CheckpointManager.save = failing_save
sys.argv = ['afgan-train'] + sys.argv[1:]
from afgan_tf.cli import train
train.run()
'''


EARLY_FAILURE = r'''
import sys
from afgan_tf.training import gan
def broken(self, data):
    raise RuntimeError('fails in the first step')
gan.GAN.train_step = broken
sys.argv = ['afgan-train'] + sys.argv[1:]
from afgan_tf.cli import train
train.run()
'''


def test_unwritable_run_directory_gives_an_error_and_keeps_the_checkpoint(tmp_path):
    data = tiny_data(tmp_path)
    r = train_cli(*TINY, f'--data={data}', f'--outdir={tmp_path / "runs"}', '--kimg=0.032', code=UNWRITABLE)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert 'error: cannot write the run directory' in r.stderr and 'ckpt-2, is intact' in r.stderr
    run_dir = next((tmp_path / 'runs').iterdir())
    from afgan_tf import network_io
    assert network_io.load_network(run_dir)['checkpoint'].endswith('ckpt-2')
    if os.geteuid() != 0:                   # A real read-only directory (root ignores permissions).
        os.chmod(run_dir / 'checkpoints', 0o555)
        try:
            r = train_cli(f'--resume={run_dir}', '--kimg=0.048')
            assert r.returncode == 1 and 'is intact' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-3000:]
        finally:
            os.chmod(run_dir / 'checkpoints', 0o755)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_directory(tmp_path):
    data = tiny_data(tmp_path)
    r = train_cli(*TINY, f'--data={data}', f'--outdir={tmp_path / "runs"}', '--kimg=0.016', code=EARLY_FAILURE)
    assert r.returncode != 0 and 'fails in the first step' in r.stderr
    assert not list((tmp_path / 'runs').iterdir()) if (tmp_path / 'runs').exists() else True


def test_init_fine_tunes_an_nvidia_pickle_and_freezed_keeps_the_first_d_blocks(reference_dir, tiny_dataset,
                                                                                tmp_path):
    """--init NETWORK: a new run from the pickle's weights (fakes_init.png is its G_ema's output for the run's
    grid latents), NVIDIA's fine-tuning overrides, and --freezed 2 leaves D's first two blocks untouched."""
    from PIL import Image

    from afgan_tf import image_writing, network_io, nvidia
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    args = [f'--init={pkl}', '--batch=4', '--gamma=0.5', '--tick=0.004', '--snap=1', '--log-every=1']
    r = train_cli(*args, f'--data={tiny_dataset}', f'--outdir={tmp_path / "runs"}', '--kimg=0.004', '--freezed=2')
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'initialised G, D and G_ema from {pkl}' in r.stdout
    run_dir = next((tmp_path / 'runs').iterdir())
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['cfg'] == 'stylegan3-t' and options['init'] == str(pkl) and options['freezed'] == 2
    assert options['loss_kwargs']['ema_rampup'] is None and options['loss_kwargs']['ada_kimg'] == 100
    assert options['D_kwargs']['block_kwargs']['freeze_layers'] == 7          # fromrgb, conv0, conv1, skip + 3.
    net = nvidia.load_network_pkl(pkl)
    z = np.random.RandomState(0).randn(16, net['G_ema'].z_dim).astype(np.float32)   # The run's grid latents.
    expected = image_writing.image_grid(net['G_ema'](z).numpy(), grid=(4, 4), scale=4).astype(int)   # 32 px x4.
    got = np.asarray(Image.open(run_dir / 'fakes_init.png')).astype(int)
    assert got.shape == expected.shape and np.max(np.abs(got - expected)) <= 1
    trained = network_io.load_network(run_dir / 'network-final')['D'].reference_variables()
    start = net['D'].reference_variables()
    frozen = [k for k in start if k.startswith(('b32.', 'b16.'))]
    assert len(frozen) >= 10 and all(np.array_equal(trained[k].numpy(), start[k].numpy()) for k in frozen)
    assert any(not np.array_equal(trained[k].numpy(), start[k].numpy()) for k in start if k.startswith('b8.'))
    grey = tiny_data(tmp_path, size=32)                                       # One channel, like Fashion-MNIST.
    refused = train_cli(*args, f'--data={grey}', f'--outdir={tmp_path / "runs"}')
    assert refused.returncode == 2 and 'with 1 channel(s)' in refused.stderr and 'with 3 channel(s)' in refused.stderr
    clash = train_cli(*args, '--cfg=stylegan2', f'--data={tiny_dataset}', f'--outdir={tmp_path / "runs"}')
    assert clash.returncode == 2 and '--cfg stylegan2 (the network has stylegan3-t)' in clash.stderr


def test_a_tfrecord_dataset_trains(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    r = tool('dataset', f'--source={src}', f'--dest={tmp_path / "tfr"}', '--format=tfrecord', '--shards=3')
    assert r.returncode == 0, r.stderr[-2000:]
    trained = train_cli(*TINY, f'--data={tmp_path / "tfr"}', f'--outdir={tmp_path / "runs"}', '--kimg=0.004')
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert '12 images 16x16x1' in trained.stdout
    run_dir = next((tmp_path / 'runs').iterdir())
    assert json.loads((run_dir / 'state.json').read_text())['step'] == 1
