"""Metric registry: names as NVIDIA's ``metric_main.py`` spells them, computing and reporting.

``METRICS`` is the one table of metric kinds: each ``MetricKind`` has its name pattern, its
compute function, whether it needs real images, and what it needs of the generator (a
``Preset`` capability). The CLIs and the training callback read it; adding a metric is one
``register_metric`` call. Registered here (``N`` = thousands of generated samples; ``_full`` =
all real images, otherwise at most ``N`` thousand):

- ``fidNk[_full]``       Frechet Inception distance (e.g. ``fid50k_full``).
- ``kidNk[_full]``       Kernel Inception distance, 100 subsets of up to 1000 (``kid50k_full``,
                         real capped at 1M as the reference).
- ``prNkK[_full]``       Precision/recall, k=K, VGG16 fc2 features (``pr50k3_full``, real capped at 200k).
- ``eqtNk_int``, ``eqtNk_frac``, ``eqrNk``   Equivariance PSNRs (``eqt50k_int`` ...); generators that
                         accept a transform (StyleGAN3) only.
- ``ppl_zfull``, ``ppl_wfull``, ``ppl_zend``, ``ppl_wend``, ``ppl2_wend``   Perceptual path length
                         (50k samples; ``ppl2`` without the face crop), LPIPS on VGG16.

``num_gen`` overrides the generated sample count (tests and quick checks use tiny ones).
Real-image features are cached per dataset (content hash + detector + its weights + count).
"""

import dataclasses
import hashlib
import json
import os
import re
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from afgan_tf.cache import cache_dir
from afgan_tf.image_writing import to_uint8_tf
from afgan_tf.metrics import equivariance, inception, scores

STANDARD = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'eqt50k_int', 'eqt50k_frac', 'eqr50k')


class MetricInputError(ValueError):
    """What the user gave cannot serve this metric (missing or unreadable data, missing weights, a
    generator the metric does not apply to). Other exceptions are bugs and propagate as they are."""


@dataclasses.dataclass(frozen=True)
class MetricKind:
    """One kind of metric in the registry."""

    kind: str                   # Short name ('fid', 'eqt_int', ...).
    form: str                   # How its names look, for messages ('fidNk[_full]').
    pattern: str                # Regex of its names: group 'num' (thousands) unless default_num, optional
                                # 'full', 'k' and kind-specific groups (passed on in MetricSpec.params).
    compute: Callable           # compute(spec, ctx, num) -> {result name: value}.
    needs_data: bool = False    # Compares with real images (a dataset is required).
    needs: str = None           # A Preset capability the generator must have, e.g. 'accepts_transform'.
    real_cap: int = None        # '_full': at most this many real images (None: all).
    default_num: int = None     # Sample count of names without 'num' (NVIDIA's ppl_* names).


METRICS = {}


def register_metric(kind):
    """Adds (or replaces) a metric kind; returns it."""
    METRICS[kind.kind] = kind
    return kind


@dataclasses.dataclass
class MetricSpec:
    """One requested metric (``parse_metric``)."""

    name: str
    kind: str               # A key of METRICS.
    num_gen: int
    max_real: int = None    # None: all real images.
    params: dict = dataclasses.field(default_factory=dict)     # Kind-specific values from the name (k, ...).

    @property
    def record(self):
        return METRICS[self.kind]

    @property
    def needs_data(self):
        return self.record.needs_data


def parse_metric(name):
    """``fid50k_full`` -> MetricSpec; ``ValueError`` naming the accepted forms otherwise."""
    name = name.strip()
    for record in METRICS.values():
        m = re.fullmatch(record.pattern, name)
        if m is None:
            continue
        groups = m.groupdict()
        num = int(groups['num']) * 1000 if groups.get('num') else record.default_num
        full = bool(groups.get('full'))
        params = {'nhood_size': int(groups['k'])} if groups.get('k') else {}
        params.update({k: v for k, v in groups.items() if k not in ('num', 'full', 'k')})
        return MetricSpec(name, record.kind, num, (record.real_cap if full else num) if record.needs_data else None,
                          params)
    raise ValueError(f'metrics: unknown metric {name!r}; expected {", ".join(r.form for r in METRICS.values())} '
                     f'(standard: {", ".join(STANDARD)})')


def parse_metric_list(text):
    """'fid50k_full,eqt50k_int' -> [MetricSpec, ...] (empty text or 'none' -> [])."""
    names = [n for n in (text or '').split(',') if n.strip() and n.strip() != 'none']
    return [parse_metric(n) for n in names]


def unmet_needs(specs, preset):
    """The specs whose generator needs ``preset`` (a networks.Preset) does not meet, as messages."""
    return [f'{s.name} needs a generator with {s.record.needs} ({preset.name} has not)' for s in specs
            if s.record.needs and not getattr(preset, s.record.needs)]


class MetricContext:
    """What metrics share: the generator, the dataset, feature networks (loaded once), the cache.

    Args:
        G: the generator (``G_ema``).
        data: path of a dataset zip/folder (needed by FID/KID/PR).
        num_gen: overrides every metric's generated sample count.
        batch_size: images per feature-network batch.
        inception_path / vgg16_path / lpips_path: weight files (None: cache / environment).
        cache: whether real-image statistics are cached.
        seed: seed of latents and subset sampling.
        log: progress messages, ``log(text)``.
    """

    def __init__(self, G, data=None, num_gen=None, batch_size=32, inception_path=None, vgg16_path=None, cache=True,
                 seed=0, log=print, progress=None, lpips_path=None):
        self.G, self.data, self.num_gen, self.batch_size = G, data, num_gen, int(batch_size)
        self.inception_path, self.vgg16_path, self.cache, self.seed = inception_path, vgg16_path, cache, seed
        self.lpips_path = lpips_path
        self.log, self.progress = log, progress
        self._metric = None             # The metric being computed (names its progress stages).
        self._detectors = {}
        self._reader = self._data_hash = None
        # NVIDIA's metrics call G(z, c) with its default noise_mode, 'random' (StyleGAN2's per-pixel noise).
        self._gen_fn = tf.function(lambda z, c: to_uint8_tf(G(z, c, noise_mode='random')))

    # Feature networks ------------------------------------------------------------------------
    def detector(self, kind):
        if kind not in self._detectors:
            try:
                if kind == 'inception':
                    self._detectors[kind] = inception.InceptionFeatures(self.inception_path, log=self.log)
                elif kind == 'lpips':
                    from afgan_tf.metrics.lpips import Lpips
                    self._detectors[kind] = Lpips(self.vgg16_path, self.lpips_path, log=self.log)
                else:
                    from afgan_tf.metrics.vgg16 import Vgg16Features
                    self._detectors[kind] = Vgg16Features(self.vgg16_path)
            except (FileNotFoundError, ValueError, RuntimeError) as e:     # The user's weight files, a download.
                raise MetricInputError(str(e)) from e
        return self._detectors[kind]

    # Data ------------------------------------------------------------------------------------
    def reader(self):
        """The dataset (streamed: its images are read batch by batch, never all at once)."""
        if self.data is None:
            raise MetricInputError('data: this metric compares with real images; give the dataset (--data)')
        if self._reader is None:
            from afgan_tf.training.dataset import DatasetReader
            try:
                self._reader = DatasetReader.open(self.data)
            except (OSError, ValueError) as e:      # Missing or unreadable dataset (DatasetError is a ValueError).
                raise MetricInputError(f'data: {e}') from e
        return self._reader

    def _dataset_hash(self):
        """Content hash of the dataset, read once per context (snapshots reuse it)."""
        if self._data_hash is None:
            self._data_hash = self.reader().fingerprint
        return self._data_hash

    def real_stats(self, detector_kind, max_items, capture_all):
        detect = self.detector(detector_kind)
        # The key names the dataset's contents, the detector and its weights, and the image count.
        key = hashlib.sha1(json.dumps([self._dataset_hash(), detector_kind, getattr(detect, 'weights_id', None),
                                       max_items, capture_all]).encode()).hexdigest()[:16] if self.cache else None
        path = str(cache_dir('stats') / f'{os.path.basename(str(self.data))}-{key}.npz') if key else None
        if path and os.path.isfile(path):
            self.log(f'real {detector_kind} features: cached {path}')
            return scores.FeatureStats.from_dict(dict(np.load(path)))
        from afgan_tf.training.dataset import iterate_batches
        total = min(max_items or self.reader().num_images, self.reader().num_images)
        stats = scores.FeatureStats(capture_all=capture_all)
        for images in iterate_batches(self.reader(), self.batch_size, max_items):
            stats.append(detect(images, batch_size=self.batch_size))
            self._report(f'real {detector_kind} features', stats.num_items, total)
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp.npz'      # Per process: concurrent runs share the cache.
            np.savez(tmp, **stats.to_dict())
            os.replace(tmp, path)
        return stats

    # Generator -------------------------------------------------------------------------------
    def labels(self, n, rng):
        if not self.G.c_dim:
            return None
        labels = self.reader().labels if self.data is not None else None
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
            if self._metric and not what.startswith(self._metric):
                what = f'{self._metric}: {what}'
            self.progress(what, done, total)


class LineProgress:
    """``progress(what, done, total)`` as one log line every ``every`` seconds and at the end of each stage:
    images done, images/s and the time left (a training run's metrics; the CLI draws bars instead)."""

    def __init__(self, log=print, every=10.0, prefix=''):
        self.log, self.every, self.prefix = log, float(every), prefix
        self._stage = self._start = self._last = None

    def __call__(self, what, done, total):
        now = time.time()
        if what != self._stage:
            self._stage, self._start, self._last = what, now, now
        finished = done >= total
        if not finished and now - self._last < self.every:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else float('inf')
        self.log(f'{self.prefix}{what}: {done}/{total} images, {rate:.1f} images/s, '
                 + (f'done in {elapsed:.0f} s' if finished else f'eta {eta:.0f} s'))


def _inception_metric(spec, ctx, num):
    capture_all = spec.kind != 'fid'
    max_real = spec.max_real if not ctx.num_gen or spec.max_real is None else min(spec.max_real, num)
    real = ctx.real_stats('inception', max_real, capture_all)
    gen = ctx.gen_stats('inception', num, capture_all)
    if spec.kind == 'fid':
        return {spec.name: scores.frechet_distance(*gen.mean_cov(), *real.mean_cov())}
    return {spec.name: scores.kernel_inception_distance(real.all(), gen.all(), seed=ctx.seed)}


def _precision_recall(spec, ctx, num):
    ctx.detector('vgg16')           # Fail early (clear error) before computing anything.
    max_real = spec.max_real if not ctx.num_gen or spec.max_real is None else min(spec.max_real, num)
    real = ctx.real_stats('vgg16', max_real, True)
    gen = ctx.gen_stats('vgg16', num, True)
    p, r = scores.precision_recall(real.all(), gen.all(), nhood_size=spec.params['nhood_size'])
    return {f'{spec.name}_precision': p, f'{spec.name}_recall': r}


def _equivariance(spec, ctx, num):
    rng_labels = np.random.default_rng(ctx.seed + 1)
    psnrs = equivariance.compute_equivariance(
        ctx.G, num, eqt_int=spec.kind == 'eqt_int', eqt_frac=spec.kind == 'eqt_frac', eqr=spec.kind == 'eqr',
        seed=ctx.seed, labels=lambda n: ctx.labels(n, rng_labels),
        progress=(lambda d, t: ctx._report(spec.name, d, t)) if ctx.progress else None)
    return {spec.name: next(iter(psnrs.values()))}


def _perceptual_path_length(spec, ctx, num):
    from afgan_tf.metrics.perceptual_path_length import compute_ppl
    lpips = ctx.detector('lpips')
    rng_labels = np.random.default_rng(ctx.seed + 1)
    value = compute_ppl(ctx.G, lpips, num, space=spec.params['space'], sampling=spec.params['sampling'],
                        crop=not spec.params['nocrop'], batch_size=min(ctx.batch_size, 8), seed=ctx.seed,
                        labels=lambda n: ctx.labels(n, rng_labels),
                        progress=(lambda d, t: ctx._report(spec.name, d, t)) if ctx.progress else None)
    return {spec.name: value}


register_metric(MetricKind('fid', 'fidNk[_full]', r'fid(?P<num>\d+)k(?P<full>_full)?', _inception_metric,
                           needs_data=True))
register_metric(MetricKind('kid', 'kidNk[_full]', r'kid(?P<num>\d+)k(?P<full>_full)?', _inception_metric,
                           needs_data=True, real_cap=1000000))
register_metric(MetricKind('pr', 'prNkK[_full]', r'pr(?P<num>\d+)k(?P<k>\d+)(?P<full>_full)?', _precision_recall,
                           needs_data=True, real_cap=200000))
for _kind, _form in (('eqt_int', 'eqtNk_int'), ('eqt_frac', 'eqtNk_frac'), ('eqr', 'eqrNk')):
    register_metric(MetricKind(_kind, _form, _form.replace('N', r'(?P<num>\d+)'), _equivariance,
                               needs='accepts_transform'))


register_metric(MetricKind('ppl', 'ppl[2]_{z,w}{full,end}', r'ppl(?P<nocrop>2?)_(?P<space>[zw])(?P<sampling>full|end)',
                           _perceptual_path_length, default_num=50000))


def compute(spec, ctx):
    """Computes one metric -> {'metric', 'results', 'value', 'seconds', 'num_samples'}."""
    spec = parse_metric(spec) if isinstance(spec, str) else spec
    unmet = unmet_needs([spec], ctx.G.preset)
    if unmet:
        raise MetricInputError(unmet[0])
    num = int(ctx.num_gen or spec.num_gen)
    start = time.time()
    ctx._metric = spec.name
    try:
        results = spec.record.compute(spec, ctx, num)
    finally:
        ctx._metric = None
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
