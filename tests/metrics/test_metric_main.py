"""afgan_tf.metrics.metric_main: the registry, real-statistics caching, end-to-end known answers."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf.metrics import metric_main
from afgan_tf.networks import PRESETS

from conftest import tool


def test_pr_without_vgg16_weights_says_how_to_supply_them(monkeypatch, load_reference_network, tmp_path):
    monkeypatch.delenv('AFGAN_TF_VGG16', raising=False)
    net = load_reference_network('stylegan3-t_32')
    ctx = metric_main.MetricContext(net.G, data=str(tmp_path), num_gen=8)
    with pytest.raises(metric_main.MetricInputError, match='VGG16 weights are needed.*--vgg16'):
        metric_main.compute('pr50k3_full', ctx)


def test_metric_names():
    spec = metric_main.parse_metric('fid50k_full')
    assert (spec.kind, spec.num_gen, spec.max_real) == ('fid', 50000, None)
    assert metric_main.parse_metric('kid50k_full').max_real == 1000000
    spec = metric_main.parse_metric('pr50k3_full')
    assert (spec.kind, spec.params['nhood_size'], spec.max_real) == ('pr', 3, 200000)
    assert metric_main.parse_metric('fid2k').max_real == 2000
    assert [s.kind for s in metric_main.parse_metric_list('eqt50k_int,eqt50k_frac,eqr50k')] == \
        ['eqt_int', 'eqt_frac', 'eqr']
    with pytest.raises(ValueError, match="unknown metric 'is50k'"):
        metric_main.parse_metric('is50k')


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


class ImagesAsGenerator:
    """A 'generator' whose outputs are given uint8 images in order: known answers for the whole metric path."""

    architecture = 'stylegan3-t'
    preset = PRESETS['stylegan3-t']
    c_dim, z_dim = 0, 4

    def __init__(self, images_u8):
        self.images = tf.constant(images_u8.astype(np.float32) / 127.5 - 1)     # to_uint8 gives them back.
        self.next = tf.Variable(0)

    def __call__(self, z, c=None, noise_mode='const'):
        n = tf.shape(z)[0]
        index = (self.next + tf.range(n)) % self.images.shape[0]
        self.next.assign_add(n)
        return tf.gather(self.images, index)


def _numpy_fid(a, b):
    """FID written independently: biased covariances, Tr(sqrt(S1 S2)) from the eigenvalues of S1 S2."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    eig = np.linalg.eigvals(s_a @ s_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.sum(np.sqrt(np.clip(eig.real, 0,
                                                                                                          None))))


def test_fid_known_answers_end_to_end(fid_inception, tiny_dataset, monkeypatch, tmp_path):
    """FID through the registry (dataset reading, generation, uint8, features, statistics): the dataset
    against itself is ~0, against a brightened copy it equals an independent numpy computation."""
    from afgan_tf.training.dataset import load_images
    monkeypatch.setenv('AFGAN_TF_CACHE', str(tmp_path / 'cache'))
    real, _ = load_images(tiny_dataset)
    brighter = np.clip(real.astype(int) + 40, 0, 255).astype(np.uint8)
    results = {}
    for name, images in (('same', real), ('brighter', brighter)):
        ctx = metric_main.MetricContext(ImagesAsGenerator(images), str(tiny_dataset), num_gen=len(real),
                                        batch_size=8, log=lambda m: None)
        ctx._detectors['inception'] = fid_inception
        results[name] = metric_main.compute('fid50k_full', ctx)['value']
    expected = _numpy_fid(fid_inception(brighter).astype(np.float64), fid_inception(real).astype(np.float64))
    print(results, 'numpy', expected)
    assert abs(results['same']) < 1e-3 * expected
    assert results['brighter'] == pytest.approx(expected, rel=1e-3) and expected > 1


def test_real_statistics_cache_key_names_the_detector_weights(fid_inception, tiny_dataset, monkeypatch,
                                                              tmp_path, load_reference_network):
    monkeypatch.setenv('AFGAN_TF_CACHE', str(tmp_path / 'cache'))
    G = load_reference_network('stylegan3-t_32').G
    files = []
    for weights_id in ('weights-a', 'weights-b', 'weights-a'):
        ctx = metric_main.MetricContext(G, str(tiny_dataset), num_gen=4, batch_size=4, log=lambda m: None)
        detector = lambda images, batch_size=32: fid_inception(images, batch_size)
        detector.weights_id = weights_id
        ctx._detectors['inception'] = detector
        ctx.real_stats('inception', None, False)
        files.append(sorted(os.listdir(tmp_path / 'cache' / 'stats')))
    assert len(files[0]) == 1 and len(files[1]) == 2 and files[2] == files[1]    # Other weights: other entry.


def test_stylegan2_metrics_use_random_noise():
    """NVIDIA's metrics run G with its default noise_mode, 'random': the same z gives other images."""
    import afgan_tf
    G = afgan_tf.Generator('stylegan2', z_dim=8, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                           channel_max=16, seed=0)
    for name, var in G.reference_variables().items():
        if name.endswith('noise_strength'):      # 0 at initialisation (and in the shared network): make it count.
            var.assign(1.0)
    z = np.random.default_rng(0).standard_normal([2, G.z_dim]).astype(np.float32)
    assert np.array_equal(G(z, noise_mode='const').numpy(), G(z, noise_mode='const').numpy())
    ctx = metric_main.MetricContext(G, num_gen=4)
    a, b = ctx._gen_fn(z, None).numpy(), ctx._gen_fn(z, None).numpy()
    assert not np.array_equal(a, b)


def test_tfrecord_statistics_equal_those_of_its_zip(fid_inception, tmp_path):
    """afgan-dataset --format tfrecord: same fingerprint, labels and streamed FID statistics as the zip."""
    from PIL import Image

    from afgan_tf.training import dataset
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(3)
    for i in range(21):
        Image.fromarray(rng.integers(0, 256, [16, 16, 3]).astype(np.uint8)).save(src / f'{i:02d}.png')
    (src / 'dataset.json').write_text(json.dumps({'labels': [[f'{i:02d}.png', i % 4] for i in range(21)]}))
    dataset.convert(src, tmp_path / 'd.zip', log=lambda m: None)
    r = tool('dataset', f'--source={src}', f'--dest={tmp_path / "d-tfr"}', '--format=tfrecord', '--shards=4')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / 'd-tfr').glob('*.tfrecord'))) == 4
    zipped, sharded = dataset.DatasetReader.open(tmp_path / 'd.zip'), dataset.DatasetReader.open(tmp_path / 'd-tfr')
    assert type(sharded).__name__ == 'TFRecordReader' and sharded.fingerprint == zipped.fingerprint
    assert np.array_equal(sharded.labels, zipped.labels) and sharded.num_images == 21
    stats = []
    for path in (tmp_path / 'd.zip', tmp_path / 'd-tfr'):
        ctx = metric_main.MetricContext(None, str(path), batch_size=8, cache=False, log=lambda m: None)
        ctx._detectors['inception'] = fid_inception
        stats.append(ctx.real_stats('inception', None, False).mean_cov())
    (mu_a, sigma_a), (mu_b, sigma_b) = stats
    assert np.max(np.abs(mu_a - mu_b)) <= 1e-6 and np.max(np.abs(sigma_a - sigma_b)) <= 1e-6


def test_line_progress_reports_images_rate_and_eta(monkeypatch):
    """A training run's metrics print a progress line (images done, images/s, ETA) every few seconds."""
    clock = [100.0]
    monkeypatch.setattr(metric_main.time, 'time', lambda: clock[0])
    lines = []
    progress = metric_main.LineProgress(lines.append, every=10)
    progress('fid1k: generated inception features', 0, 1000)
    for done in (100, 200, 300):
        clock[0] += 4
        progress('fid1k: generated inception features', done, 1000)
    assert len(lines) == 1 and lines[0] == 'fid1k: generated inception features: 300/1000 images, 25.0 images/s, eta 28 s'
    clock[0] += 1
    progress('fid1k: generated inception features', 1000, 1000)
    assert lines[-1].endswith('1000/1000 images, 76.9 images/s, done in 13 s')
