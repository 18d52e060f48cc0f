"""``arrays.marginal_transform``'s vectorised normal scores against the per-column reference they
replaced, ties (image backgrounds), constant columns, repeated and held-out rows included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from mi_estimators.arrays import marginal_transform


def naive_normal_scores(a: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
    """The first release's loop: per column, the mid-rank of each value among the sorted training
    values by two binary searches, Φ⁻¹ by ``scipy.stats.norm.ppf``; a constant column gives 0."""
    train = a[train_idx]
    m = len(train)
    out = np.empty_like(a)
    for j in range(a.shape[1]):
        s = np.sort(train[:, j])
        if s[0] == s[-1]:
            out[:, j] = 0.0
            continue
        u = (np.searchsorted(s, a[:, j], "left") + np.searchsorted(s, a[:, j], "right")) / (2.0 * m)
        out[:, j] = stats.norm.ppf(np.clip(u, 0.5 / m, 1 - 0.5 / m))
    return out


def test_pixels_with_ties_match_the_reference_bit_for_bit():
    # 8-bit "pixels", mostly an exact-zero background: the ties must keep their mid-ranks
    rng = np.random.default_rng(0)
    a = np.where(rng.random((600, 40)) < 0.7, 0.0, rng.integers(1, 256, (600, 40)) / 255.0)
    a[:, 3] = 0.5  # constant everywhere
    a[:, 7] = np.r_[np.zeros(420), rng.random(180)]  # constant on the training rows only
    train = np.arange(420)
    got, want = marginal_transform(a, train), naive_normal_scores(a, train)
    np.testing.assert_array_equal(got, want)
    assert (got[:, [3, 7]] == 0).all()
    # the background keeps one value per column, below every lit pixel of that column
    for j in (0, 11, 39):
        zero = a[:, j] == 0
        assert len(np.unique(got[zero, j])) == 1 and got[zero, j].max() < got[~zero, j].min()


@given(st.integers(1, 60), st.integers(1, 4), st.integers(0, 2 ** 31 - 1), st.sampled_from([3, 8, 1000]))
def test_random_arrays_match_the_reference(n_train, d, seed, levels):
    # few distinct levels (many ties) to many; held-out rows beyond, between and equal to training values
    rng = np.random.default_rng(seed)
    a = rng.integers(0, levels, (n_train + 25, d)) * rng.choice([-1.0, 0.1, 3.0, 1e200]) + rng.normal(size=d)
    train = rng.choice(len(a), n_train, replace=bool(seed % 2))  # repeated training rows count twice
    np.testing.assert_array_equal(marginal_transform(a, train), naive_normal_scores(a, train))


def test_increasing_maps_and_column_order_change_nothing():
    rng = np.random.default_rng(1)
    a = rng.standard_cauchy((300, 5))
    train = rng.permutation(300)[:200]
    z = marginal_transform(a, train)
    np.testing.assert_array_equal(marginal_transform(np.arctan(a) * 7 + 2, train), z)
    np.testing.assert_array_equal(marginal_transform(a[:, ::-1], train), z[:, ::-1])
    assert z.flags.c_contiguous and z.dtype == np.float64
    # approximately standard normal on the training rows: mean 0 by symmetry of the mid-ranks
    assert abs(z[train].mean()) < 1e-12 and z[train].std() == pytest.approx(1.0, abs=0.05)
