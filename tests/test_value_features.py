"""The trained critic's value features: normal scores mapped back to z-scores through the split's
knots (``arrays.inverse_knots``, ``readout.split``, ``candidates.features``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators.arrays import inverse_knots, marginal_transform
from mi_estimators.estimation import Context, EstimateOptions, split
from mi_estimators.estimation.candidates.features import (VALUE_FEATURES_MAX_DIM, ValueFeatures, interpolate,
                                                          value_features)


def test_interpolate_matches_numpy_per_column():
    rng = np.random.default_rng(0)
    knots = np.sort(rng.normal(size=(3, 9)), 1)
    knots[1, 2:5] = knots[1, 2]  # tied knots carry tied values, as inverse_knots makes them
    values = np.cumsum(rng.random((3, 9)), 1)
    values[1, 2:5] = values[1, 2]
    t = rng.normal(scale=2.0, size=(50, 3))
    got = interpolate(torch.as_tensor(t), torch.as_tensor(knots), torch.as_tensor(values)).numpy()
    want = np.stack([np.interp(t[:, j], knots[j], values[j]) for j in range(3)], 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_knots_invert_the_normal_scores_on_the_training_rows():
    rng = np.random.default_rng(1)
    a = np.c_[rng.standard_cauchy(2000), np.exp(rng.normal(size=2000)), rng.integers(0, 4, 2000)]
    train = rng.permutation(2000)[:1400]
    scores, z = marginal_transform(a, train), marginal_transform(a, train, "zscore")
    s, v = inverse_knots(scores, z, train, knots=64)
    assert s.shape == v.shape == (3, 64)
    assert (np.diff(s, axis=1) >= 0).all() and (np.diff(v, axis=1) >= 0).all()
    assert s[:, 0].tolist() == scores[train].min(0).tolist() and v[:, -1].tolist() == z[train].max(0).tolist()
    back = interpolate(torch.as_tensor(scores), torch.as_tensor(s), torch.as_tensor(v)).numpy()
    # exact on the knots (the extremes included) and on the discrete column; monotone everywhere
    np.testing.assert_allclose(back[:, 2], z[:, 2], atol=1e-12)
    for j in range(3):
        order = np.argsort(scores[:, j], kind="stable")
        assert (np.diff(back[order, j]) >= -1e-12).all()
    # between two knots, back and z both lie between the two knots' values: the error is at most their gap
    for j in range(3):
        hi = np.clip(np.searchsorted(s[j], scores[:, j], "right"), 1, 63)
        inside = (scores[:, j] >= s[j, 0]) & (scores[:, j] <= s[j, -1])
        gap = v[j, hi] - v[j, hi - 1]
        assert (np.abs(back[inside, j] - z[inside, j]) <= gap[inside] + 1e-12).all()


def test_split_holds_the_knots_with_the_rank_transform_only():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(300, 1))
    data = split(x, y, EstimateOptions().resolve(3, 1), np.random.default_rng(0), torch.device("cpu"))
    (sx, vx), (sy, vy) = data.inverse
    assert sx.shape == vx.shape == (3, 210) and sy.shape == (1, 210)  # every training row is a knot
    # the knots are the training rows' own (score, z-score) pairs
    assert set(sx[0].tolist()) == set(data.train[0][:, 0].tolist())
    for standardize in ("zscore", "none"):
        opts = EstimateOptions(standardize=standardize).resolve(3, 1)
        assert split(x, y, opts, np.random.default_rng(0), torch.device("cpu")).inverse is None


def test_value_features_apply_to_the_separable_critic_on_all_columns_only():
    rng = np.random.default_rng(3)
    device = torch.device("cpu")

    def ctx(x, y, **options):
        opts = EstimateOptions(**options).resolve(x.shape[1], y.shape[1])
        return Context(split(x, y, opts, rng, device), opts, rng, device)

    narrow = ctx(rng.normal(size=(200, 3)), rng.normal(size=(200, 2)))
    reduction = value_features(narrow, None)
    critic = reduction.critic(narrow.opts, *narrow.data.train)
    assert isinstance(critic, ValueFeatures) and critic(*narrow.data.test).shape == (40, 40)
    assert reduction.name == "trained"
    assert value_features(narrow, 2) is None  # the canonical reduction keeps its inputs
    assert value_features(ctx(rng.normal(size=(200, 1)), rng.normal(size=(200, 1))), None) is None  # concat
    assert value_features(ctx(rng.normal(size=(200, 3)), rng.normal(size=(200, 2)), standardize="zscore"),
                          None) is None
    wide = ctx(rng.normal(size=(200, VALUE_FEATURES_MAX_DIM)), rng.normal(size=(200, 1)))
    assert value_features(wide, None) is None


def test_estimate_trains_and_cross_fits_the_critic_with_value_features():
    task = mie.get("mixture-concentric-3x1-k5", kind="tasks")
    x, y = task.sample(600, seed=0)
    r = mie.estimate(x, y, steps=60, eval_every=20, copula=False, seed=0)
    assert isinstance(r.critic, ValueFeatures) and r.settings.chosen_critic == "trained"
    assert r.settings.read_out_folds == 5 and np.isfinite(r.mi) and r.ci[0] <= r.mi <= r.ci[1]
    with pytest.raises(ValueError, match="shape"):
        r.critic(torch.zeros(4, 2), torch.zeros(4, 1))
