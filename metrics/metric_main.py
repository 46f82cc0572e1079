"""Metric registry: names as NVIDIA's ``metric_main.py`` spells them, computing and reporting.

Names (``N`` = thousands of generated samples; ``_full`` = all real images, otherwise at most
``N`` thousand):
- ``fidNk[_full]``       Frechet Inception distance (e.g. ``fid50k_full``).
- ``kidNk[_full]``       Kernel Inception distance, 100 subsets of up to 1000 (``kid50k_full``,
                         real capped at 1M as the reference).
- ``prNk3[_full]``       Precision/recall, k=3, VGG16 fc2 features (``pr50k3_full``, real capped at 200k).
- ``eqtNk_int``, ``eqtNk_frac``, ``eqrNk``   Equivariance PSNRs (``eqt50k_int`` ...).
``num_gen`` overrides the generated sample count (tests and quick checks use tiny ones).
Real-image features are cached per dataset (content hash + detector + count) under the cache dir.
"""

import dataclasses
import hashlib
import json
import os
import re
import time

import numpy as np
import tensorflow as tf

from afgan_tf.images import to_uint8_tf
from afgan_tf.metrics import equivariance, inception, scores

_PATTERN = re.compile(r'^(?:(fid|kid)(\d+)k(_full)?|(pr)(\d+)k(\d+)(_full)?|eqt(\d+)k_(int|frac)|eqr(\d+)k)$')
STANDARD = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'eqt50k_int', 'eqt50k_frac', 'eqr50k')


@dataclasses.dataclass
class MetricSpec:
    name: str
    kind: str               # 'fid', 'kid', 'pr', 'eqt_int', 'eqt_frac', 'eqr'
    num_gen: int
    max_real: int = None    # None: all real images.
    nhood_size: int = 3

    @property
    def needs_data(self):
        return self.kind in ('fid', 'kid', 'pr')


def parse_metric(name):
    """``fid50k_full`` -> MetricSpec; ``ValueError`` naming the accepted forms otherwise."""
    m = _PATTERN.match(name.strip())
    if not m:
        raise ValueError(f'metrics: unknown metric {name!r}; expected fidNk[_full], kidNk[_full], prNk3[_full], '
                         f'eqtNk_int, eqtNk_frac or eqrNk (standard: {", ".join(STANDARD)})')
    if m.group(1):
        kind, n, full = m.group(1), int(m.group(2)) * 1000, bool(m.group(3))
        cap = 1000000 if kind == 'kid' else None
        return MetricSpec(name, kind, n, cap if full else n)
    if m.group(4):
        n, full = int(m.group(5)) * 1000, bool(m.group(7))
        return MetricSpec(name, 'pr', n, 200000 if full else n, nhood_size=int(m.group(6)))
    if m.group(8):
        return MetricSpec(name, f'eqt_{m.group(9)}', int(m.group(8)) * 1000)
    return MetricSpec(name, 'eqr', int(m.group(10)) * 1000)


def parse_metric_list(text):
    """'fid50k_full,eqt50k_int' -> [MetricSpec, ...] (empty text or 'none' -> [])."""
    names = [n for n in (text or '').split(',') if n.strip() and n.strip() != 'none']
    return [parse_metric(n) for n in names]


class MetricContext:
    """What metrics share: the generator, the dataset, feature networks (loaded once), the cache.

    Args:
        G: the generator (``G_ema``).
        data: path of a dataset zip/folder (needed by FID/KID/PR).
        num_gen: overrides every metric's generated sample count.
        batch_size: images per feature-network batch.
        inception_path / vgg16_path: weight files (None: cache / environment).
        cache: whether real-image statistics are cached.
        seed: seed of latents and subset sampling.
        log: progress messages, ``log(text)``.
    """

    def __init__(self, G, data=None, num_gen=None, batch_size=32, inception_path=None, vgg16_path=None, cache=True,
                 seed=0, log=print, progress=None):
        self.G, self.data, self.num_gen, self.batch_size = G, data, num_gen, int(batch_size)
        self.inception_path, self.vgg16_path, self.cache, self.seed = inception_path, vgg16_path, cache, seed
        self.log, self.progress = log, progress
        self._detectors = {}
        self._real = self._data_hash = None
        # NVIDIA's metrics call G(z, c) with its default noise_mode, 'random' (StyleGAN2's per-pixel noise).
        self._gen_fn = tf.function(lambda z, c: to_uint8_tf(G(z, c, noise_mode='random')))

    # Feature networks ------------------------------------------------------------------------
    def detector(self, kind):
        if kind not in self._detectors:
            if kind == 'inception':
                self._detectors[kind] = inception.InceptionFeatures(self.inception_path, log=self.log)
            else:
                from afgan_tf.metrics.vgg16 import Vgg16Features
                vgg = Vgg16Features(self.vgg16_path)
                self._detectors[kind] = vgg.features
        return self._detectors[kind]

    # Data ------------------------------------------------------------------------------------
    def real_images(self):
        if self.data is None:
            raise ValueError('data: this metric compares with real images; give the dataset (--data)')
        if self._real is None:
            from afgan_tf.training.dataset import load_images
            self._real = load_images(self.data)
        return self._real

    def _dataset_hash(self):
        """Content hash of the dataset, read once per context (snapshots reuse it)."""
        if self._data_hash is None:
            self._data_hash = self._hash_files()
        return self._data_hash

    def _hash_files(self):
        h = hashlib.sha1()
        if os.path.isdir(self.data):
            for root, _, files in sorted(os.walk(self.data)):
                for name in sorted(files):
                    with open(os.path.join(root, name), 'rb') as f:
                        h.update(name.encode())
                        h.update(f.read())
        else:
            with open(self.data, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    h.update(chunk)
        return h.hexdigest()

    def real_stats(self, detector_kind, max_items, capture_all):
        key = hashlib.sha1(json.dumps([self._dataset_hash(), detector_kind, max_items, capture_all]).encode()) \
            .hexdigest()[:16] if self.cache else None
        path = os.path.join(inception.cache_dir(), 'stats', f'{os.path.basename(str(self.data))}-{key}.npz') \
            if key else None
        if path and os.path.isfile(path):
            self.log(f'real {detector_kind} features: cached {path}')
            return scores.FeatureStats.from_dict(dict(np.load(path)))
        images, _ = self.real_images()
        images = images[:max_items] if max_items else images
        stats = scores.FeatureStats(capture_all=capture_all)
        detect = self.detector(detector_kind)
        for i in range(0, len(images), self.batch_size):
            stats.append(detect(images[i:i + self.batch_size], batch_size=self.batch_size))
            self._report(f'real {detector_kind} features', min(i + self.batch_size, len(images)), len(images))
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + '.tmp.npz'
            np.savez(tmp, **stats.to_dict())
            os.replace(tmp, path)
        return stats

    # Generator -------------------------------------------------------------------------------
    def labels(self, n, rng):
        if not self.G.c_dim:
            return None
        labels = self.real_images()[1] if self.data is not None else None
        idx = rng.choice(labels, n) if labels is not None else rng.integers(0, self.G.c_dim, n)
        return np.eye(self.G.c_dim, dtype=np.float32)[idx]

    def gen_stats(self, detector_kind, num, capture_all):
        rng = np.random.default_rng(self.seed)
        stats = scores.FeatureStats(capture_all=capture_all, max_items=num)
        detect = self.detector(detector_kind)
        while not stats.is_full():
            z = rng.standard_normal([self.batch_size, self.G.z_dim]).astype(np.float32)
            images = self._gen_fn(z, self.labels(self.batch_size, rng))
            stats.append(detect(images, batch_size=self.batch_size))
            self._report(f'generated {detector_kind} features', stats.num_items, num)
        return stats

    def _report(self, what, done, total):
        if self.progress:
            self.progress(what, done, total)


def compute(spec, ctx):
    """Computes one metric -> {'metric', 'results', 'value', 'seconds', 'num_samples'}."""
    spec = parse_metric(spec) if isinstance(spec, str) else spec
    num = int(ctx.num_gen or spec.num_gen)
    start = time.time()
    if spec.kind in ('fid', 'kid', 'pr'):
        detector = 'vgg16' if spec.kind == 'pr' else 'inception'
        if detector == 'vgg16':
            ctx.detector('vgg16')           # Fail early (clear error) before computing anything.
        capture_all = spec.kind != 'fid'
        max_real = spec.max_real if not ctx.num_gen or spec.max_real is None else min(spec.max_real, num)
        real = ctx.real_stats(detector, max_real, capture_all)
        gen = ctx.gen_stats(detector, num, capture_all)
        if spec.kind == 'fid':
            results = {spec.name: scores.frechet_distance(*gen.mean_cov(), *real.mean_cov())}
        elif spec.kind == 'kid':
            results = {spec.name: scores.kernel_inception_distance(real.all(), gen.all(), seed=ctx.seed)}
        else:
            p, r = scores.precision_recall(real.all(), gen.all(), nhood_size=spec.nhood_size)
            results = {f'{spec.name}_precision': p, f'{spec.name}_recall': r}
    else:
        rng_labels = np.random.default_rng(ctx.seed + 1)
        psnrs = equivariance.compute_equivariance(
            ctx.G, num, eqt_int=spec.kind == 'eqt_int', eqt_frac=spec.kind == 'eqt_frac', eqr=spec.kind == 'eqr',
            seed=ctx.seed, labels=lambda n: ctx.labels(n, rng_labels),
            progress=(lambda d, t: ctx._report(spec.name, d, t)) if ctx.progress else None)
        results = {spec.name: next(iter(psnrs.values()))}
    return {'metric': spec.name, 'results': results, 'value': next(iter(results.values())),
            'seconds': round(time.time() - start, 3), 'num_samples': num}


def report(result, run_dir, snapshot=None):
    """Appends the result as one JSON line to ``run_dir/metric-<name>.jsonl`` (as the reference does)."""
    line = json.dumps({**result, 'snapshot': snapshot, 'timestamp': time.time()})
    if run_dir:
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, f'metric-{result["metric"]}.jsonl'), 'a') as f:
            f.write(line + '\n')
    return line
