"""Projector: round trip on a shared reference network, noise regularisation, targets, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from afgan_tf import images, projector

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')


@pytest.fixture(scope='module')
def inception_distance():
    return projector.InceptionDistance(size=139)       # Smaller input than 299: same weights, faster tests.


def _target(G, seed=5):
    z = np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32)
    img = G.synthesis(G.mapping(z), noise_mode='const').numpy()
    return img, images.to_uint8(img)[0]


def test_round_trip_stylegan3(load_reference_network, inception_distance):
    G = load_reference_network('stylegan3-t_32').G
    img, target = _target(G)
    res = projector.project(G, target, inception_distance, num_steps=150, w_avg_samples=1000)
    avg = G.synthesis(np.tile(res['w_avg'][None, None], [1, G.num_ws, 1]), noise_mode='const').numpy()
    got, base = projector.psnr(res['image'], img), projector.psnr(avg, img)
    # Measured here: 42.1 dB for the projection vs 30.6 dB for w_avg's image.
    assert got > base + 6, (got, base)
    assert res['w'].shape == (G.num_ws, G.w_dim) and np.allclose(res['w'][0], res['w'][-1])   # space 'w'
    assert res['history'][-1]['distance'] < res['history'][0]['distance']


def test_noise_regularisation_decreases_and_buffers_restored(load_reference_network, inception_distance):
    G = load_reference_network('stylegan2_32').G
    before = {k: v.numpy().copy() for k, v in G.reference_variables().items() if k.endswith('noise_const')}
    _, target = _target(G)
    res = projector.project(G, target, inception_distance, num_steps=40, space='w+', w_avg_samples=500)
    reg = [h['noise_reg'] for h in res['history']]
    assert reg[-1] < reg[0] / 10, reg[::8]
    assert len(res['noise']) == len(before) and res['w'].shape == (G.num_ws, G.w_dim)
    for k, v in G.reference_variables().items():
        if k.endswith('noise_const'):
            assert np.array_equal(v.numpy(), before[k])


def test_prepare_target_conversions_and_errors():
    rgb = np.random.default_rng(0).integers(0, 256, [40, 60, 3]).astype(np.uint8)
    msgs = []
    out = projector.prepare_target(rgb, 16, 1, log=msgs.append)
    assert out.shape == (16, 16, 1) and any('grey' in m for m in msgs) and any('centre-cropping' in m for m in msgs)
    assert projector.prepare_target(rgb[:, :, 0], 16, 3, log=lambda m: None).shape == (16, 16, 3)
    with pytest.raises(ValueError, match='target: expected an HxW, HxWx1, HxWx3 or HxWx4 image'):
        projector.prepare_target(rgb[:, :, :2], 16, 3)


def test_project_cli_and_generate_w_file(reference_dir, tmp_path):
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    Image.fromarray(np.random.default_rng(0).integers(0, 256, [48, 40, 3]).astype(np.uint8)).save(tmp_path / 't.png')
    out = tmp_path / 'proj'
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.project', f'--network={pkl}', f'--target={tmp_path / "t.png"}',
                        f'--outdir={out}', '--num-steps=3', '--w-avg-samples=100', '--save-video'],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line['metric'] == 'inception-multiscale+pixel' and line['steps'] == 3 and np.isfinite(line['psnr'])
    assert 'centre-cropping 40x48' in r.stderr
    assert {'projected_w.npz', 'proj.png', 'target.png', 'result.json'} <= set(os.listdir(out))
    assert any(n.startswith('proj.') and n != 'proj.png' for n in os.listdir(out))          # the video
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.generate', f'--network={pkl}',
                        f'--w-file={out / "projected_w.npz"}', f'--outdir={tmp_path / "gen"}'],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    again = np.asarray(Image.open(tmp_path / 'gen' / 'proj00.png')).astype(int)
    side = np.asarray(Image.open(out / 'proj.png')).astype(int)[:, 32:64]
    assert np.max(np.abs(again - side)) <= 1
    for target, message in ((tmp_path / 'missing.png', 'no such file'), (tmp_path / 'x.txt', 'is not an image')):
        if target.suffix == '.txt':
            target.write_text('hello')
        r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.project', f'--network={pkl}', f'--target={target}',
                            f'--outdir={tmp_path / "bad"}'], capture_output=True, text=True, env=ENV, timeout=600)
        assert r.returncode == 2 and message in r.stderr, r.stderr[-1000:]


@pytest.fixture(scope='module')
def random_vgg16_file(tmp_path_factory):
    """A Keras VGG16 weights file with top (random weights: only the shapes matter here)."""
    import keras
    path = tmp_path_factory.mktemp('vgg') / 'vgg16.weights.h5'
    keras.applications.VGG16(weights=None, include_top=True).save_weights(path)
    return path


def test_vgg16_features_accept_any_size(random_vgg16_file):
    from afgan_tf.metrics.vgg16 import LPIPS_LAYERS, Vgg16Features
    vgg = Vgg16Features(random_vgg16_file)
    for size in (32, 64, 256):
        feats = vgg.lpips_features(np.zeros([1, size, size, 3], np.float32) + 100)
        assert len(feats) == len(LPIPS_LAYERS) and feats[0].shape[1:3] == (size, size)
    # The conv model shares the classifier model's weights (not a copy that could drift).
    assert vgg.convs.get_layer('block1_conv1').kernel is vgg.fc2.get_layer('block1_conv1').kernel
    assert vgg.features(np.zeros([2, 32, 32, 1], np.float32)).shape == (2, 4096)


def test_project_cli_with_vgg16(reference_dir, random_vgg16_file, tmp_path):
    """afgan-project --vgg16 on a 32x32 network (crashed: the conv model expected 224x224 inputs)."""
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    Image.fromarray(np.random.default_rng(1).integers(0, 256, [32, 32, 3]).astype(np.uint8)).save(tmp_path / 't.png')
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.project', f'--network={pkl}', f'--target={tmp_path / "t.png"}',
                        f'--outdir={tmp_path / "proj"}', '--num-steps=2', '--w-avg-samples=50',
                        f'--vgg16={random_vgg16_file}'], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line['metric'] == 'vgg16-lpips' and np.isfinite(line['distance'])
