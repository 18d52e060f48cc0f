"""High-dimensional inputs: the ridge-CCA reduction (planted directions, agreement with plain CCA and
the Gaussian log density ratio) and the reduced candidate of estimate() on wide data with few rows
per column (images, embeddings)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import mi_estimators as mie
from mi_estimators.copula import Canonical, fit_dispersion
from mi_estimators.estimation.candidates.reduced import RidgeCanonical, gaussian_pair_scores

FAST = dict(steps=300, eval_every=50, critic_options={"hidden": 32, "layers": 2}, batch_size=128, folds=2)


def planted(n: int, d: int, rho: float = 0.8, pairs: int = 2, seed: int = 0):
    """``pairs`` Gaussian pairs of correlation ``rho`` among ``d`` independent N(0, 1) columns a side, each
    side randomly rotated; MI = −pairs/2 · log(1 − rho²). Returns x, y, the planted x directions
    ``(pairs, d)`` and the MI."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, pairs))
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d))
    x[:, :pairs] = z
    y[:, :pairs] = rho * z + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, pairs))
    qx, qy = (np.linalg.qr(rng.standard_normal((d, d)))[0] for _ in range(2))
    return x @ qx, y @ qy, qx[:pairs], -pairs / 2 * math.log(1 - rho ** 2)


def test_ridge_cca_recovers_planted_directions_with_few_rows_per_column():
    x, y, directions, _ = planted(400, 60)                                # under 7 rows per column
    canon = RidgeCanonical.fit(x, y, ridge=1.0, rank=2)
    unit = canon.ax / np.linalg.norm(canon.ax, axis=1, keepdims=True)
    captured = np.linalg.svd(unit @ directions.T, compute_uv=False)       # cosines of the principal angles
    assert captured.min() > 0.9
    assert np.all(np.abs(canon.r - 0.8) < 0.1)
    plain = RidgeCanonical.fit(x, y, ridge=1e-6, rank=2)                  # ~ plain CCA: overfitted
    assert plain.r[0] > canon.r[0] + 0.02                                   # biased up by the noise


def test_ridge_cca_without_ridge_is_plain_cca():
    x, y, _, _ = planted(2000, 6, seed=1)
    canon = RidgeCanonical.fit(x, y, ridge=1e-10)
    z = np.hstack([x - x.mean(0), y - y.mean(0)])
    reference = Canonical.of(fit_dispersion(z, math.inf), 6)
    np.testing.assert_allclose(canon.r, reference.rho, atol=1e-6)
    a = (x - x.mean(0)) @ canon.ax.T
    np.testing.assert_allclose(a.std(0), 1.0, atol=1e-9)                  # unit-variance variates
    np.testing.assert_allclose(np.corrcoef(a.T), np.eye(6), atol=1e-6)      # uncorrelated within a side


def test_gaussian_pair_scores_are_the_bivariate_normal_log_ratio():
    rng = np.random.default_rng(2)
    a, b, r = rng.standard_normal((5, 2)), rng.standard_normal((4, 2)), np.array([0.7, -0.3])
    got = gaussian_pair_scores(torch.as_tensor(a), torch.as_tensor(b), torch.as_tensor(r)).numpy()
    want = np.zeros((5, 4))
    for i in range(5):
        for j in range(4):
            for k in range(2):
                pair = stats.multivariate_normal([0, 0], [[1, r[k]], [r[k], 1]]).logpdf([a[i, k], b[j, k]])
                want[i, j] += pair - stats.norm.logpdf(a[i, k]) - stats.norm.logpdf(b[j, k])
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_ridge_cca_rejects_bad_input():
    with pytest.raises(ValueError, match="ridge must be > 0"):
        RidgeCanonical.fit(np.zeros((10, 2)), np.zeros((10, 2)), ridge=0.0)
    with pytest.raises(ValueError, match="same n"):
        RidgeCanonical.fit(np.zeros((10, 2)), np.zeros((9, 2)), ridge=1.0)


@pytest.fixture(scope="module")
def wide():
    return planted(600, 40, seed=3)      # 420 training rows for 80 columns: the copula candidate is off


def test_estimate_on_a_planted_wide_case_beats_the_old_path(wide):
    x, y, _, mi = wide
    new = mie.estimate(x, y, seed=0, **FAST)
    old = mie.estimate(x, y, seed=0, reduce=False, **FAST)
    assert new.settings.copula is None and old.settings.chosen_critic == "trained"
    assert new.settings.chosen_critic.startswith("trained-ridge-cca-")
    assert new.settings.monitor[new.settings.chosen_critic] > new.settings.monitor["trained"]
    assert abs(new.mi - mi) < abs(old.mi - mi) and new.mi > old.mi + 0.2 and new.ci[0] < mi
    assert new.settings.read_out_folds == 2                                  # cross-fitted


def test_background_pixels_do_not_break_estimate():
    rng = np.random.default_rng(4)
    n, d = 400, 30
    x = np.where(rng.random((n, d)) < 0.7, 0.0, rng.random((n, d)))        # mostly exact zeros
    x[:, :3] = 0.0                                                          # all-background columns
    y = x + 0.3 * rng.standard_normal((n, d))
    y[:, -2:] = 1.0
    with pytest.warns(UserWarning, match="constant"):
        r = mie.estimate(x, y, seed=0, **FAST)
    assert r.settings.dropped_columns == {"x": [0, 1, 2], "y": [d - 2, d - 1]}
    assert math.isfinite(r.mi) and r.mi > 0.1 and math.isfinite(r.stderr)
