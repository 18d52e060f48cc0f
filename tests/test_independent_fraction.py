"""The Gaussian copula with a fraction of independent pairs (``mi_estimators.copula``, ``independent``):
its scores against SciPy's densities of the mixture, its Monte-Carlo MI against the inlier tasks'
truth, the maximum-likelihood fit against the parameters that drew the rows, the thresholded (sparse)
directions against the true axes, and ``estimate()`` on the benchmark's inlier task."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import mi_estimators as mie
from mi_estimators.copula import (Canonical, EllipticalCopulaCritic, fit_independent_fraction, threshold_cross,
                                  threshold_within)
from mi_estimators.testing.strategies import gaussian_covariances


def _naive_mixture_ratio(r: np.ndarray, dx: int, w: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log[((1 − w) N(x, y; R) + w N(x; Rxx) N(y; Ryy)) / (N(x; Rxx) N(y; Ryy))] pair by pair (SciPy)."""
    joint = stats.multivariate_normal(np.zeros(len(r)), r)
    fx, fy = stats.multivariate_normal(np.zeros(dx), r[:dx, :dx]), stats.multivariate_normal(np.zeros(len(r) - dx),
                                                                                             r[dx:, dx:])
    log_w = np.log(w) if w > 0 else -np.inf
    return np.array([[np.logaddexp(np.log1p(-w) + joint.logpdf(np.r_[xi, yj]) - fx.logpdf(xi) - fy.logpdf(yj), log_w)
                      for yj in y] for xi in x])


@settings(max_examples=20, deadline=None)
@given(spec=gaussian_covariances(max_dim=3), w=st.floats(0.0, 0.95), seed=st.integers(0, 2**31 - 1))
def test_scores_are_the_log_ratio_of_the_mixture_by_scipy(spec, w, seed):
    cov, dx, _ = spec
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(4, dx)), rng.normal(size=(3, cov.shape[0] - dx))
    critic = EllipticalCopulaCritic(Canonical.of(cov, dx), math.inf, rank=cov.shape[0], independent=w)
    got = critic.scores_t(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(got, _naive_mixture_ratio(cov, dx, w, x, y), rtol=1e-7, atol=1e-9)


def _exact(task_id: str, fraction: float) -> tuple:
    """The inlier task, its base Gaussian's correlation (unit-variance columns) and that model's critic."""
    task = mie.get(task_id, kind="tasks")
    cov = task.covs[0]
    sd = np.sqrt(np.diag(cov))
    r = cov / np.outer(sd, sd)
    critic = EllipticalCopulaCritic(Canonical.of(r, task.x_dim), math.inf, rank=2, independent=fraction)
    return task, sd, critic


@pytest.mark.parametrize("task_id,fraction", [("mixture-2pair-5x5-inliers0.5", 0.5),
                                               ("mixture-2pair-25x25-inliers0.2", 0.2)])
def test_the_exact_model_is_the_inlier_tasks_ratio_and_mi(task_id, fraction):
    task, sd, critic = _exact(task_id, fraction)
    x, y = task.sample(300, seed=3)
    diag = critic.scores_t(torch.as_tensor(x / sd[:task.x_dim]), torch.as_tensor(y / sd[task.x_dim:])).diagonal()
    np.testing.assert_allclose(diag.numpy(), task.log_density_ratio(x, y), atol=1e-8)
    # two Monte-Carlo values of the same integral: the task's (stderr ~0.001) and the model's (~0.001)
    assert critic.mutual_information() == pytest.approx(task.mi, abs=5 * math.hypot(task.mi_stderr, 0.001))
    assert critic.mutual_information() == critic.mutual_information()  # a seeded generator: the same value


def test_fit_recovers_the_fraction_and_the_correlations_that_drew_the_rows():
    rng = np.random.default_rng(0)
    n, w, rho = 40_000, 0.4, np.array([0.9, 0.5])
    a = rng.standard_normal((n, 2))
    b = np.where(rng.random(n)[:, None] < w, rng.standard_normal((n, 2)),
                 rho * a + np.sqrt(1 - rho ** 2) * rng.standard_normal((n, 2)))
    got_w, got_rho = fit_independent_fraction(a, b)
    assert got_w == pytest.approx(w, abs=0.02)
    np.testing.assert_allclose(got_rho, rho, atol=0.02)


def test_fit_finds_no_independent_share_in_a_gaussian_and_matches_the_plain_copula():
    task = mie.get("gauss-2pair-5x5", kind="tasks")
    sd = np.sqrt(np.diag(task.cov))
    x, y = task.sample(20_000, seed=0)
    x, y = x / sd[:5], y / sd[5:]
    plain = EllipticalCopulaCritic.fit(x, y, rank=2)
    mixed = EllipticalCopulaCritic.fit(x, y, rank=2, independent=True)
    assert mixed.independent < 0.02
    assert mixed.mutual_information() == pytest.approx(plain.mutual_information(), abs=0.02)


def test_fit_on_inlier_rows_recovers_the_fraction_and_the_mi():
    task, sd, _ = _exact("mixture-2pair-25x25-inliers0.5", 0.5)
    x, y = task.sample(20_000, seed=1)
    critic = EllipticalCopulaCritic.fit(x / sd[:25], y / sd[25:], rank=2, independent=True)
    plain = EllipticalCopulaCritic.fit(x / sd[:25], y / sd[25:], rank=2)
    assert critic.independent == pytest.approx(0.5, abs=0.05)
    assert critic.mutual_information() == pytest.approx(task.mi, abs=0.02)
    assert plain.mutual_information() < task.mi - 0.05  # what the share of independent pairs costs the plain fit


def _axis_cosines(critic: EllipticalCopulaCritic) -> np.ndarray:
    """Cosines of the principal angles between the span of x's rank-k directions and the first k axes."""
    q = np.linalg.qr(critic.ax.numpy().T)[0]      # (dx, k): an orthonormal basis of the directions' span
    return np.linalg.svd(q[:critic.rank])[1]     # its rows on the first k axes


def test_sparse_directions_find_the_interacting_axes_the_dense_ones_blur():
    """25 + 25 columns, half the pairs independent, 3,500 rows: the dense cross block's noise (~1/sqrt(n)
    per entry over 625 entries) tilts the directions off the two interacting axes; thresholded, it keeps
    them, and the held-out DV value rises towards the truth (module docstring of mi_estimators.copula)."""
    task, sd, _ = _exact("mixture-2pair-25x25-inliers0.5", 0.5)
    (x, y), (xt, yt) = ((a / sd[:25], b / sd[25:]) for a, b in (task.sample(3500, seed=s) for s in (4, 5)))
    dense = EllipticalCopulaCritic.fit(x, y, rank=2, independent=True)
    sparse = EllipticalCopulaCritic.fit(x, y, rank=2, independent=True, sparse=True)
    assert sparse.sparse and not dense.sparse and "sparse=True" in repr(sparse)
    # sum of squared sines of the principal angles: 0.047 dense, 0 sparse on these rows (0.030-0.053 and
    # at most 1.1e-5 over six samples: every noise entry of both the cross and the own blocks thresholded)
    tilt = {name: float(np.sum(1 - _axis_cosines(c) ** 2)) for name, c in (("dense", dense), ("sparse", sparse))}
    assert tilt["dense"] > 0.02 and tilt["sparse"] < 0.1 * tilt["dense"]
    dv = mie.get("dv")
    value = {name: float(dv(c.scores_t(torch.as_tensor(xt), torch.as_tensor(yt))))
             for name, c in (("dense", dense), ("sparse", sparse))}
    assert value["sparse"] > value["dense"] + 0.005 and abs(value["sparse"] - task.mi) < 0.03


def test_threshold_cross_moves_each_entry_by_the_universal_level():
    rng = np.random.default_rng(0)
    cross = rng.uniform(-0.3, 0.3, size=(4, 6))
    lam = math.sqrt(2 * math.log(24) / 500)
    got = threshold_cross(cross, 500)
    kept = np.abs(cross) > lam
    np.testing.assert_allclose(got[kept], cross[kept] - np.sign(cross[kept]) * lam)
    assert np.all(got[~kept] == 0) and 0 < kept.sum() < cross.size


def test_threshold_within_keeps_the_diagonal_and_positive_definiteness():
    rng = np.random.default_rng(1)
    r = np.corrcoef(rng.normal(size=(200, 6)).T)
    got = threshold_within(r, 200)
    lam = math.sqrt(2 * math.log(15) / 200)
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(np.diag(got), 1.0)
    np.testing.assert_allclose(got[off], np.sign(r[off]) * np.maximum(np.abs(r[off]) - lam, 0))
    # six columns driven by two factors (smallest eigenvalue 0.0046): thresholding at λ = 0.050 (2,166
    # rows) leaves a negative eigenvalue, so the block comes back as it was
    near = np.array([[1.0, -0.493, 0.894, 0.573, 0.146, -0.992], [-0.493, 1.0, -0.066, 0.42, -0.925, 0.466],
                     [0.894, -0.066, 1.0, 0.871, -0.3, -0.905], [0.573, 0.42, 0.871, 1.0, -0.721, -0.596],
                     [0.146, -0.925, -0.3, -0.721, 1.0, -0.116], [-0.992, 0.466, -0.905, -0.596, -0.116, 1.0]])
    lam = math.sqrt(2 * math.log(15) / 2166)
    shrunk = np.sign(near) * np.maximum(np.abs(near) - lam, 0)
    np.fill_diagonal(shrunk, 1.0)
    assert np.linalg.eigvalsh(near).min() > 0 > np.linalg.eigvalsh(shrunk).min()
    assert threshold_within(near, 2166).tolist() == near.tolist()


def test_sparse_without_the_independent_fit_is_rejected():
    with pytest.raises(ValueError, match="independent=True"):
        EllipticalCopulaCritic.fit(np.random.default_rng(0).normal(size=(50, 2)),
                                   np.random.default_rng(1).normal(size=(50, 2)), sparse=True)


def test_bad_fractions_are_rejected():
    canon = Canonical.of(np.eye(2), 1)
    for w in (-0.1, 1.0):
        with pytest.raises(ValueError, match="fraction w in"):
            EllipticalCopulaCritic(canon, math.inf, 1, independent=w)
    with pytest.raises(ValueError, match="Gaussian copula"):
        EllipticalCopulaCritic(canon, 3.0, 1, independent=0.2)


def test_estimate_reads_the_inlier_task_with_the_fraction():
    """The benchmark's inlier task at n = 5,000: the plain copula and the trained critic read about
    0.19-0.22 for 0.27 (studies/README.md); the contaminated copula wins the monitor split. In 25 + 25
    columns it wins on sparse directions, and the cross-fit refits them (0.240 on dense ones)."""
    task = mie.get("mixture-2pair-5x5-inliers0.5", kind="tasks")
    x, y = task.sample(5000, seed=1)
    r = mie.estimate(x, y, seed=0)
    assert r.settings.chosen_critic == "copula" and r.settings.copula["independent"] > 0.3
    assert abs(r.mi - task.mi) <= 0.1 * task.mi
    assert r.ci[0] <= task.mi <= r.ci[1]
    wide = mie.get("mixture-2pair-25x25-inliers0.5", kind="tasks")
    x, y = wide.sample(5000, seed=2)
    r = mie.estimate(x, y, seed=1)
    assert r.settings.chosen_critic == "copula" and r.settings.copula["sparse"] and r.settings.read_out_folds == 5
    assert abs(r.mi - wide.mi) <= 0.1 * wide.mi and r.ci[0] <= wide.mi <= r.ci[1]
