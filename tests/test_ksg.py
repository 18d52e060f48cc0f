"""KSG k-NN estimator against closed-form Gaussian MI and a naive O(n²) reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import digamma

from mi_estimators.ksg import ksg_mi
from mi_estimators.tasks import GaussianTask


def _naive_ksg(x, y, k):
    n = len(x)
    dx = np.abs(x[:, None, :] - x[None, :, :]).max(-1)
    dy = np.abs(y[:, None, :] - y[None, :, :]).max(-1)
    dz = np.maximum(dx, dy)
    np.fill_diagonal(dz, np.inf)
    eps = np.sort(dz, axis=1)[:, k - 1]
    nx = (dx < eps[:, None]).sum(1) - 1
    ny = (dy < eps[:, None]).sum(1) - 1
    return digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))


@settings(max_examples=10)
@given(seed=st.integers(0, 1000), k=st.integers(1, 6), dx=st.integers(1, 3), dy=st.integers(1, 3))
def test_matches_naive_reference(seed, k, dx, dy):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(80, dx)), rng.normal(size=(80, dy))
    y[:, 0] += x[:, 0]
    assert ksg_mi(x, y, k=k, standardize=False, jitter=0) == pytest.approx(_naive_ksg(x, y, k), abs=1e-9)


@pytest.mark.parametrize("mi, d", [(0.5, 1), (1.0, 2)])
def test_close_to_gaussian_closed_form(mi, d):
    task = GaussianTask.from_mi(mi, d)
    x, y = task.sample(4000, seed=1)
    assert ksg_mi(x, y) == pytest.approx(mi, abs=0.06)


def test_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        ksg_mi(np.zeros((10, 1)), np.zeros((10, 1)), k=0)
    with pytest.raises(ValueError, match="same number of rows"):
        ksg_mi(np.zeros((10, 1)), np.zeros((9, 1)))
