"""metrics/perceptual_path_length.py: NVIDIA's PPL recipe, checked against a numpy computation."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import afgan_tf
from afgan_tf.metrics import lpips as lpips_module
from afgan_tf.metrics import metric_main
from afgan_tf.metrics import perceptual_path_length as ppl
from conftest import ENV, TINY, numpy_lpips, random_vgg16_state_dict, tiny_data, tool, write_torch_state_dict


@pytest.fixture(scope='module')
def lpips_files(tmp_path_factory):
    root = tmp_path_factory.mktemp('ppl')
    state, lin = random_vgg16_state_dict(seed=1)
    write_torch_state_dict(root / 'vgg16.pth', state)
    write_torch_state_dict(root / 'vgg.pth', lin)
    convs = [(state[k], state[k.replace('weight', 'bias')]) for k in state if k.endswith('weight')]
    return root / 'vgg16.pth', root / 'vgg.pth', convs, [v.reshape(-1) for v in lin.values()]


@pytest.fixture(scope='module')
def net(lpips_files):
    return lpips_module.Lpips(str(lpips_files[0]), str(lpips_files[1]), log=lambda m: None)


def generator(arch, res=32):
    return afgan_tf.Generator(arch, seed=0, z_dim=8, w_dim=8, img_resolution=res, img_channels=1, channel_base=256,
                              channel_max=16)


def test_slerp():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal([4, 8]), rng.standard_normal([4, 8])
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(ppl.slerp(a, b, np.zeros([4, 1])), unit(a), atol=1e-12)
    np.testing.assert_allclose(ppl.slerp(a, b, np.ones([4, 1])), unit(b), atol=1e-12)
    half = ppl.slerp(a, b, np.full([4, 1], 0.5))
    angle = lambda u, v: np.arccos(np.clip(np.sum(unit(u) * unit(v), -1), -1, 1))
    np.testing.assert_allclose(angle(a, half), angle(half, b), atol=1e-9)       # Constant angular speed.
    np.testing.assert_allclose(np.linalg.norm(half, axis=-1), 1, atol=1e-12)


def test_filtered_mean():
    d = np.arange(1, 201, dtype=np.float64)       # 1st percentile (lower) = 2, 99th (higher) = 199.
    assert ppl.filtered_mean(d) == pytest.approx(np.mean(np.arange(2, 200)))
    d[-1] = 1e9                                   # An outlier is filtered out.
    assert ppl.filtered_mean(d) < 200


def test_crop_and_pool():
    img = tf.reshape(tf.range(64 * 64, dtype=tf.float32), [1, 64, 64, 1])
    out = ppl.crop_and_pool(img, True, 64)
    np.testing.assert_array_equal(out.numpy(), img.numpy()[:, 24:56, 16:48])
    pooled = ppl.crop_and_pool(tf.ones([1, 512, 512, 1]), False, 512)
    assert pooled.shape == (1, 256, 256, 1)


@pytest.mark.parametrize('space,sampling,crop', [('w', 'end', True), ('z', 'full', False)])
def test_ppl_matches_numpy(lpips_files, net, space, sampling, crop):
    """Independent computation of the same samples: numpy slerp/lerp, crop and LPIPS."""
    G = generator('stylegan3-t')
    _, _, convs, lin = lpips_files
    got = ppl.compute_ppl(G, net, 5, space=space, sampling=sampling, crop=crop, epsilon=1e-2, batch_size=3, seed=7)
    rng = np.random.default_rng(7)
    dist = []
    for n in (3, 2):
        t = rng.random(n) * (1 if sampling == 'full' else 0)
        z0, z1 = rng.standard_normal([n, 8]).astype(np.float32), rng.standard_normal([n, 8]).astype(np.float32)
        rng.integers(0, 2 ** 31 - 1)
        if space == 'w':
            w0, w1 = G.mapping(z0, None).numpy(), G.mapping(z1, None).numpy()
            ws = [w0 + (w1 - w0) * (t + d)[:, None, None] for d in (0, 1e-2)]
        else:
            ws = []
            for d in (0, 1e-2):
                a, b = z0 / np.linalg.norm(z0, axis=1, keepdims=True), z1 / np.linalg.norm(z1, axis=1, keepdims=True)
                omega = np.arccos(np.sum(a * b, 1, keepdims=True))
                p = (t[:, None] + d) * omega
                c = b - np.cos(omega) * a
                zt = a * np.cos(p) + c / np.linalg.norm(c, axis=1, keepdims=True) * np.sin(p)
                ws.append(G.mapping(zt.astype(np.float32), None).numpy())
        imgs = [(G.synthesis(tf.constant(w, tf.float32)).numpy() + 1) * 127.5 for w in ws]
        if crop:
            imgs = [im[:, 12:28, 8:24] for im in imgs]
        dist.append(numpy_lpips(imgs[0], imgs[1], convs, lin) / 1e-4)
    dist = np.concatenate(dist)
    lo, hi = np.percentile(dist, 1, method='lower'), np.percentile(dist, 99, method='higher')
    expected = dist[(dist >= lo) & (dist <= hi)].mean()
    assert got > 0 and got == pytest.approx(expected, rel=2e-3)


def test_noise_is_shared_within_a_pair(net):
    """StyleGAN2 with strong per-pixel noise: identical latents give distance 0 (the same noise in both
    images), though the noise itself changes the images."""
    G = generator('stylegan2')
    for v in G.variables:
        if 'noise_strength' in v.path:
            v.assign(tf.ones_like(v))
    sampler = ppl.PPLSampler(G, net, space='w', crop=False)
    z = np.random.default_rng(0).standard_normal([2, 8]).astype(np.float32)
    same = sampler(z, z, np.zeros(2), noise_seed=3)
    np.testing.assert_allclose(same, 0, atol=1e-3)
    w = G.mapping(z, None).numpy()
    a, b = sampler._synth(tf.constant(w), tf.constant(1, tf.int64)), sampler._synth(tf.constant(w), tf.constant(2, tf.int64))
    assert np.mean(np.abs(a.numpy() - b.numpy())) > 0.5


def test_registry_and_cli(network, lpips_files, tmp_path):
    specs = {name: metric_main.parse_metric(name) for name in ('ppl_zfull', 'ppl_wfull', 'ppl_zend', 'ppl_wend',
                                                               'ppl2_wend')}
    assert all(s.kind == 'ppl' and s.num_gen == 50000 and not s.needs_data for s in specs.values())
    assert specs['ppl_zfull'].params == {'nocrop': '', 'space': 'z', 'sampling': 'full'}
    assert specs['ppl2_wend'].params == {'nocrop': '2', 'space': 'w', 'sampling': 'end'}
    with pytest.raises(ValueError, match=r'ppl\[2\]_\{z,w\}\{full,end\}'):
        metric_main.parse_metric('ppl_xend')
    path, _ = network
    vgg, lin, _, _ = lpips_files
    result = tool('metrics', f'--network={path}', '--metrics=ppl_wend,ppl2_wend', '--num=4', f'--vgg16={vgg}',
                  f'--lpips={lin}', f'--report-dir={tmp_path}')
    assert result.returncode == 0, result.stderr
    for name in ('ppl_wend', 'ppl2_wend'):
        line = json.loads((tmp_path / f'metric-{name}.jsonl').read_text().splitlines()[-1])
        assert line['metric'] == name and line['num_samples'] == 4 and np.isfinite(line['value']) and line['value'] > 0
    missing = tool('metrics', f'--network={path}', '--metrics=ppl_zend', '--num=4', f'--vgg16={tmp_path / "no.pth"}',
                   f'--lpips={lin}', f'--report-dir={tmp_path}')
    assert missing.returncode == 2 and 'VGG16 weights file not found' in missing.stderr


def test_in_training_metrics(lpips_files, tmp_path):
    """afgan-train --metrics ppl2_wend: the weights from $AFGAN_TF_VGG16 / $AFGAN_TF_LPIPS, a line per metric."""
    vgg, lin, _, _ = lpips_files
    data = tiny_data(tmp_path)
    env = dict(ENV, AFGAN_TF_VGG16=str(vgg), AFGAN_TF_LPIPS=str(lin))
    result = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.train', *TINY, f'--data={data}',
                             f'--outdir={tmp_path / "runs"}', '--kimg=0.008', '--metrics=ppl2_wend',
                             '--metrics-at=end', '--metric-num=2'], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / 'runs').iterdir()
    line = json.loads((run / 'metric-ppl2_wend.jsonl').read_text().splitlines()[-1])
    assert line['num_samples'] == 2 and np.isfinite(line['value']) and line['value'] > 0
