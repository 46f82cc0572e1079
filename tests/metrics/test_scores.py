"""afgan_tf.metrics.scores: FID, KID and precision/recall maths with known answers."""

import numpy as np
import pytest

from afgan_tf.metrics import scores


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
    # The generated half covers grid rows 0-4; its 3rd-neighbour radius is 1 inside and sqrt(2) on the
    # edge row 4, so row 5 is covered as well: 60 of the 100 real points.
    assert r == pytest.approx(0.6, abs=1e-12)
    with pytest.raises(ValueError, match='more than 3 samples'):
        scores.precision_recall(grid[:3], grid)
