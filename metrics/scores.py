"""Distances between feature sets: FID, KID and the k-NN manifold precision/recall.

The formulas are the ones of NVIDIA's metrics (``frechet_inception_distance.py``,
``kernel_inception_distance.py``, ``precision_recall.py``), in numpy/scipy float64.
"""

import warnings

import numpy as np
import scipy.linalg


class FeatureStats:
    """Running mean and (biased) covariance of feature vectors in float64, optionally keeping them all."""

    def __init__(self, dim=None, capture_all=False, max_items=None):
        self.dim, self.capture_all, self.max_items = dim, capture_all, max_items
        self.num_items = 0
        self._sum = self._outer = None
        self._all = []

    def is_full(self):
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, features):
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or (self.dim is not None and x.shape[1] != self.dim):
            raise ValueError(f'features: expected [N, {self.dim or "D"}], got shape {x.shape}')
        if self.max_items is not None:
            x = x[:max(self.max_items - self.num_items, 0)]
        if not len(x):
            return
        if self._sum is None:
            self.dim = x.shape[1]
            self._sum, self._outer = np.zeros(self.dim), np.zeros([self.dim, self.dim])
        self._sum += x.sum(0)
        self._outer += x.T @ x
        if self.capture_all:
            self._all.append(x.astype(np.float32))
        self.num_items += len(x)

    def mean_cov(self):
        if not self.num_items:
            raise ValueError('no features were collected')
        mean = self._sum / self.num_items
        return mean, self._outer / self.num_items - np.outer(mean, mean)

    def all(self):
        if not self.capture_all:
            raise ValueError('these statistics were collected without capture_all')
        return np.concatenate(self._all) if self._all else np.zeros([0, self.dim or 0], np.float32)

    def to_dict(self):
        out = {'num_items': self.num_items, 'sum': self._sum, 'outer': self._outer}
        if self.capture_all:
            out['all'] = self.all()
        return out

    @classmethod
    def from_dict(cls, data):
        stats = cls(capture_all='all' in data)
        stats.num_items = int(data['num_items'])
        stats._sum, stats._outer = np.asarray(data['sum']), np.asarray(data['outer'])
        stats.dim = stats._sum.shape[0]
        if 'all' in data:
            stats._all = [np.asarray(data['all'])]
        return stats


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (the real part, as the reference takes)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f'mean/covariance shapes differ: {mu1.shape} {sigma1.shape} vs {mu2.shape} {sigma2.shape}')
    with warnings.catch_warnings():     # Singular products (fewer samples than dimensions) are expected.
        warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
        s, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(sigma1 + sigma2 - 2 * s)))


def kernel_inception_distance(real, gen, num_subsets=100, max_subset_size=1000, seed=None):
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged over random subsets."""
    real, gen = np.asarray(real, np.float64), np.asarray(gen, np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f'real/gen features: expected [N, D] with the same D, got {real.shape} and {gen.shape}')
    n = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f'KID needs at least 2 samples per set, got {real.shape[0]} real and {gen.shape[0]} generated')
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def _pairwise_distances(rows, cols, col_batch):
    out = []
    rr = np.sum(rows.astype(np.float64) ** 2, 1)[:, None]
    for i in range(0, len(cols), col_batch):
        c = cols[i:i + col_batch]
        d2 = rr + np.sum(c.astype(np.float64) ** 2, 1)[None, :] - 2 * (rows.astype(np.float64) @ c.T.astype(np.float64))
        out.append(np.sqrt(np.maximum(d2, 0)))
    return np.concatenate(out, 1)


def precision_recall(real, gen, nhood_size=3, row_batch_size=10000, col_batch_size=10000):
    """Improved precision/recall (Kynkaanniemi et al. 2019): (precision, recall).

    Precision: fraction of generated samples inside the real manifold (the union of balls around
    each real sample reaching its ``nhood_size``-th nearest real neighbour); recall: the same with
    the roles swapped.
    """
    real, gen = np.asarray(real, np.float32), np.asarray(gen, np.float32)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f'real/gen features: expected [N, D] with the same D, got {real.shape} and {gen.shape}')
    results = []
    for manifold, probes in ((real, gen), (gen, real)):
        if len(manifold) <= nhood_size:
            raise ValueError(f'precision/recall with nhood_size={nhood_size} needs more than {nhood_size} samples '
                             f'per set, got {len(manifold)}')
        kth = np.concatenate([np.partition(_pairwise_distances(manifold[i:i + row_batch_size], manifold,
                                                               col_batch_size), nhood_size, axis=1)[:, nhood_size]
                              for i in range(0, len(manifold), row_batch_size)])
        inside = [np.any(_pairwise_distances(probes[i:i + row_batch_size], manifold, col_batch_size) <= kth[None, :],
                         axis=1) for i in range(0, len(probes), row_batch_size)]
        results.append(float(np.mean(np.concatenate(inside))))
    return tuple(results)
