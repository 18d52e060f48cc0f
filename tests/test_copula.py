"""Elliptical-copula critics against SciPy's densities, the Student-t task's closed-form MI, and the
EM fit against a known dispersion."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from mi_estimators.copula import DF_GRID, Canonical, EllipticalCopulaCritic, fit_dispersion, rank_grid, t_scores
from mi_estimators.tasks import StudentTTask
from mi_estimators.testing.strategies import gaussian_covariances

DFS = st.sampled_from([1.0, 2.5, 7.0, math.inf])


def _density(cov: np.ndarray, df: float):
    zeros = np.zeros(cov.shape[0])
    return stats.multivariate_normal(zeros, cov) if math.isinf(df) else stats.multivariate_t(zeros, cov, df=df)


def _naive_ratio(r: np.ndarray, dx: int, df: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log f(x, y) − log f(x) − log f(y) pair by pair with SciPy's multivariate densities."""
    joint, fx, fy = _density(r, df), _density(r[:dx, :dx], df), _density(r[dx:, dx:], df)
    return np.array([[joint.logpdf(np.r_[xi, yj]) - fx.logpdf(xi) - fy.logpdf(yj) for yj in y] for xi in x])


@settings(max_examples=20, deadline=None)
@given(spec=gaussian_covariances(max_dim=3), df=DFS, seed=st.integers(0, 2**31 - 1))
def test_full_rank_scores_are_scipys_log_density_ratio(spec, df, seed):
    cov, dx, _ = spec
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(4, dx)), rng.normal(size=(5, cov.shape[0] - dx))
    critic = EllipticalCopulaCritic(Canonical.of(cov, dx), df, rank=cov.shape[0])
    got = critic.scores_t(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(got, _naive_ratio(cov, dx, df, x, y), atol=1e-9)


def _rank_k_dispersion(cov: np.ndarray, dx: int, k: int) -> np.ndarray:
    """The dispersion whose cross block keeps only the k leading canonical correlations (SVD by hand)."""
    def sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(w)) @ v.T

    sx, sy = sqrt(cov[:dx, :dx]), sqrt(cov[dx:, dx:])
    u, rho, vt = np.linalg.svd(np.linalg.inv(sx) @ cov[:dx, dx:] @ np.linalg.inv(sy))
    rho[k:] = 0.0
    out = cov.copy()
    out[:dx, dx:] = sx @ u[:, :len(rho)] @ np.diag(rho) @ vt[:len(rho)] @ sy
    out[dx:, :dx] = out[:dx, dx:].T
    return out


@settings(max_examples=15, deadline=None)
@given(spec=gaussian_covariances(max_dim=3), df=DFS, data=st.data())
def test_rank_k_scores_are_the_ratio_of_the_rank_k_dispersion(spec, df, data):
    cov, dx, _ = spec
    k = data.draw(st.integers(0, min(dx, cov.shape[0] - dx)))
    rho = Canonical.of(cov, dx).rho
    # with a tie at the cut (rho_k = rho_k+1) the k leading pairs are any basis of the tied
    # subspace, and two SVDs may pick different ones (both right): the comparison needs a gap
    assume(k in (0, len(rho)) or rho[k - 1] - rho[k] > 1e-6)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    x, y = rng.normal(size=(3, dx)), rng.normal(size=(4, cov.shape[0] - dx))
    critic = EllipticalCopulaCritic(Canonical.of(cov, dx), df, rank=k)
    got = critic.scores_t(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(got, _naive_ratio(_rank_k_dispersion(cov, dx, k), dx, df, x, y), atol=1e-8)


@settings(max_examples=20, deadline=None)
@given(spec=gaussian_covariances(max_dim=3), df=DFS)
def test_model_mi_is_the_student_t_tasks_closed_form(spec, df):
    """An independent implementation: the Student-t task's MI (Gaussian term + entropy correction)."""
    cov, dx, mi = spec
    critic = EllipticalCopulaCritic(Canonical.of(cov, dx), df, rank=cov.shape[0])
    truth = mi if math.isinf(df) else StudentTTask(cov, dx, df).mi
    assert critic.mutual_information() == pytest.approx(truth, abs=1e-8)


def test_the_exact_critic_reads_out_the_mi_by_monte_carlo():
    task = StudentTTask.identity(2, 2, df=3)
    x, y = task.sample(40_000, seed=1)
    cov = np.eye(4)
    critic = EllipticalCopulaCritic(Canonical.of(cov, 2), 3.0, rank=2)
    # on t scores the critic is the task's own ratio: same values row by row
    diag = critic.scores_t(torch.as_tensor(x[:500]), torch.as_tensor(y[:500])).diagonal().numpy()
    np.testing.assert_allclose(diag, task.log_density_ratio(x[:500], y[:500]), atol=1e-9)


@given(s=st.lists(st.floats(-5, 5), min_size=1, max_size=50), df=st.sampled_from([1.0, 3.0, 30.0]))
def test_t_scores_are_the_t_quantile_of_the_normal_cdf(s, df):
    s = np.array(s)
    # the naive reference loses digits in 1 − Φ(s) beyond |s| ~ 5; the tails are checked below
    np.testing.assert_allclose(t_scores(s, df), stats.t.ppf(stats.norm.cdf(s), df), rtol=1e-6, atol=1e-8)
    assert np.array_equal(t_scores(s, math.inf), s)


def test_t_scores_keep_the_far_tails_odd_monotone_and_finite():
    s = np.linspace(-9, 9, 181)
    for df in (1.0, 3.0):
        t = t_scores(s, df)
        assert np.isfinite(t).all() and (np.diff(t) > 0).all()
        np.testing.assert_allclose(t, -t[::-1], rtol=1e-12)


def test_em_recovers_a_known_dispersion():
    rng = np.random.default_rng(0)
    r = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 1.0]])
    z = rng.multivariate_normal(np.zeros(3), r, size=40_000) / np.sqrt(rng.chisquare(3, 40_000) / 3)[:, None]
    np.testing.assert_allclose(fit_dispersion(z, 3.0), r, atol=0.02)
    np.testing.assert_allclose(np.diag(fit_dispersion(z, math.inf)), 1.0)


def test_grids_and_bad_options():
    assert rank_grid(3) == [0, 1, 2, 3] and rank_grid(50)[-1] == 50 and math.isinf(DF_GRID[-1])
    with pytest.raises(ValueError, match="df"):
        EllipticalCopulaCritic(Canonical.of(np.eye(2), 1), -1.0, 1)
    with pytest.raises(ValueError, match="rank"):
        EllipticalCopulaCritic(Canonical.of(np.eye(2), 1), 2.0, -1)


# --------------------------------------------------------------------------------------------
# the Gaussian copula fitted to rows (ν = ∞): the closed-form Gaussian log density ratio
# --------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dx=st.integers(1, 4), dy=st.integers(1, 4))
def test_gaussian_fit_scores_are_the_fitted_gaussians_log_density_ratio(seed, dx, dy):
    """Naive reference: scipy's multivariate normal log-densities of the rows' second-moment matrix
    (the copula's inputs are normal scores: zero mean, unit variance) and the Gaussian MI of it."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(dx + dy, dx + dy))
    z = rng.normal(size=(200, dx + dy)) @ mix  # dependent columns
    z /= np.sqrt((z ** 2).mean(0))  # unit second moments, as normal scores have
    cov = z.T @ z / len(z)
    critic = EllipticalCopulaCritic.fit(z[:, :dx], z[:, dx:], df=math.inf)
    xs, ys = z[:7, :dx], z[:7, dx:]  # score every pair (x_i, y_j)
    ref = _naive_ratio(cov, dx, math.inf, xs, ys)
    got = critic.scores_t(torch.as_tensor(xs), torch.as_tensor(ys)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(ref).max()))
    np.testing.assert_allclose(critic(torch.as_tensor(xs), torch.as_tensor(ys)).numpy(), got, rtol=1e-5, atol=1e-5)
    gaussian_mi = 0.5 * (np.linalg.slogdet(cov[:dx, :dx])[1] + np.linalg.slogdet(cov[dx:, dx:])[1]
                         - np.linalg.slogdet(cov)[1])
    assert critic.mutual_information() == pytest.approx(gaussian_mi, rel=1e-6, abs=1e-9)


def test_gaussian_fit_recovers_a_gaussian_tasks_optimal_critic():
    import mi_estimators as mie

    task = mie.get("gauss-5x5-mi2", kind="tasks")
    sd = np.sqrt(np.diag(task.cov))  # unit-variance columns: the log density ratio is unchanged
    x, y = task.sample(100_000, seed=0)
    critic = EllipticalCopulaCritic.fit(x / sd[:5], y / sd[5:], df=math.inf)
    assert critic.mutual_information() == pytest.approx(task.mi, abs=0.03)
    xt, yt = task.sample(500, seed=1)
    with torch.no_grad():
        scores = critic(torch.tensor(xt / sd[:5]), torch.tensor(yt / sd[5:]))
    truth = task.log_density_ratio(xt, yt)
    assert np.abs(scores.diagonal().numpy() - truth).mean() < 0.05 * np.abs(truth).mean()
    # DV of the exact Gaussian critic on all pairs of a held-out set is I_G (the score is log r)
    assert mie.get("dv")(scores).item() == pytest.approx(task.mi, abs=0.3)


def test_fit_rejects_too_few_rows_and_bad_shapes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"more than dx \+ dy = 4 rows"):
        EllipticalCopulaCritic.fit(rng.normal(size=(4, 2)), rng.normal(size=(4, 2)))
    with pytest.raises(ValueError, match="same number of rows"):
        EllipticalCopulaCritic.fit(rng.normal(size=(40, 2)), rng.normal(size=(30, 2)))
