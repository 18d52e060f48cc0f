"""The delete-a-group jackknife's fast paths (mi_estimators.jackknife) against the naive computation:
the bound re-evaluated on each sub-matrix without a group's rows and columns."""

import math

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators.bounds.dv import DV
from mi_estimators.jackknife import delete_group_values, jackknife_variance, naive_delete_group_values


def _scores(m: int, signal: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(m, m, generator=g, dtype=torch.float64) + signal * torch.eye(m, dtype=torch.float64)


@pytest.mark.parametrize("name", ["dv", "mine", "infonce"])
@pytest.mark.parametrize("m, groups, signal", [(90, 6, 3.0), (101, 7, 0.0), (64, 20, 40.0), (12, 2, -5.0)])
def test_fast_values_agree_with_the_naive_jackknife(name, m, groups, signal):
    bound, scores = mie.get(name), _scores(m, signal)
    fast, naive = delete_group_values(bound, scores, groups), naive_delete_group_values(bound, scores, groups)
    assert fast.shape == (groups,)
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-10)
    loo = naive
    assert jackknife_variance(bound, scores, groups) == pytest.approx(
        (groups - 1) / groups * ((loo - loo.mean()) ** 2).sum(), rel=1e-9)


def test_float32_scores_agree_to_float32_round_off():
    scores = _scores(200, 4.0).float()
    for name in ("dv", "infonce"):
        bound = mie.get(name)
        np.testing.assert_allclose(delete_group_values(bound, scores, 10),
                                   naive_delete_group_values(bound, scores.double(), 10), rtol=0, atol=1e-9)
        np.testing.assert_allclose(delete_group_values(bound, scores, 10),
                                   naive_delete_group_values(bound, scores, 10), rtol=0, atol=1e-5)


def test_an_underflowing_kept_sum_falls_back_to_the_naive_values():
    """Row 0's only large score is in column 1: once column 1's group is deleted, row 0's other
    entries are e^-1000 of its maximum (0 in float64), so the fast path hands over to the naive one."""
    scores = torch.zeros(20, 20, dtype=torch.float64)
    scores[0, 1] = 1000.0
    for name in ("dv", "infonce"):
        bound = mie.get(name)
        np.testing.assert_allclose(delete_group_values(bound, scores, 4), naive_delete_group_values(bound, scores, 4),
                                   rtol=0, atol=1e-9)


def test_bounds_without_a_fast_path_use_the_naive_values():
    class ShiftedDV(DV):  # overrides value: its jackknife must not be DV's
        def value(self, scores):
            return super().value(scores) + scores[0, 0]

    scores = _scores(30, 2.0)
    for bound in (ShiftedDV(), mie.get("infonce", clip=5.0), mie.get("nwj"), mie.get("smile")):
        fast, naive = delete_group_values(bound, scores, 5), naive_delete_group_values(bound, scores, 5)
        np.testing.assert_array_equal(fast, naive)
    located = torch.randn(12, 12, 3, dtype=torch.float64)  # (N, N, L) scores: the naive path
    np.testing.assert_array_equal(delete_group_values(mie.get("infonce"), located, 3),
                                  naive_delete_group_values(mie.get("infonce"), located, 3))


def test_non_finite_scores_raise_as_in_the_naive_path():
    scores = _scores(10, 1.0)
    scores[2, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        delete_group_values(mie.get("infonce"), scores, 2)
