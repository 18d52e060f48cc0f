"""The cross-fit's stacked refits (mi_estimators.estimation.refit) against their naive reference:
K calls of fit_critic without a monitor, one after the other, on the same generator."""

import copy

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators.critics import ConcatCritic, SeparableCritic, stack, unstack
from mi_estimators.estimation.candidates.base import Candidate
from mi_estimators.estimation.candidates.features import ValueFeatures
from mi_estimators.estimation.candidates import trained
from mi_estimators.estimation.candidates.trained import TrainedCandidate
from mi_estimators.estimation.refit import fit_stacked, stackable
from mi_estimators.fit import FitConfig, fit_critic


def _rows(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x[:, :2] + 0.5 * torch.randn(n, 2, generator=g)


def _critics(k, wrapped=False):
    torch.manual_seed(0)
    out = [SeparableCritic(3 + 4 * wrapped, 2 + 3 * wrapped, hidden=16, layers=2, embed_dim=8, activation="silu",
                           norm_feature=True) for _ in range(k)]
    if wrapped:  # the value features: fixed knots around the trained critic
        knots = lambda d: (torch.linspace(-2, 2, 5).repeat(d, 1), torch.linspace(-3, 1, 5).repeat(d, 1))  # noqa: E731
        out = [ValueFeatures(c, knots(3), knots(2)) for c in out]
    return out


def _centred(scores):
    return scores - scores.mean(1, keepdim=True)


@pytest.mark.parametrize("ema", [None, 0.9])
@pytest.mark.parametrize("wrapped", [False, True])
def test_fit_stacked_matches_sequential_fits(ema, wrapped):
    critics = _critics(3, wrapped)
    reference = copy.deepcopy(critics)
    train = [_rows(n, seed) for seed, n in enumerate([101, 100, 100])]
    steps = [30, 24, 30]  # unequal counts: a copy past its own keeps what it held at its last step
    config = FitConfig(steps=30, batch=32, lr=3e-3, weight_decay=1e-4, ema=ema)
    rng = np.random.default_rng(7)
    for critic, rows, s in zip(reference, train, steps):
        fit_critic(critic, mie.get("infonce"), rows, None,
                   FitConfig(steps=s, batch=32, lr=3e-3, weight_decay=1e-4, ema=ema), rng=rng)
    stacked = fit_stacked(critics, mie.get("infonce"), train, steps, config, np.random.default_rng(7))
    probe = _rows(40, 99)
    for a, b in zip(stacked, reference):
        assert not a.training
        # InfoNCE ignores a constant added to a row of scores, so the gradient of h's output bias is
        # zero up to rounding and Adam's first step moves it by ±lr whatever that rounding's sign: the
        # rows' offsets are arbitrary, what InfoNCE reads (the centred rows) must agree
        torch.testing.assert_close(_centred(a(*probe)), _centred(b(*probe)), atol=1e-5, rtol=1e-5)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    fit_stacked(_critics(2, wrapped), mie.get("infonce"), train[:2], [5, 9], FitConfig(steps=9, batch=32, lr=1e-3),
                rng_a)
    for critic, rows, s in zip(_critics(2, wrapped), train[:2], [5, 9]):
        fit_critic(critic, mie.get("infonce"), rows, None, FitConfig(steps=s, batch=32, lr=1e-3), rng=rng_b)
    assert rng_a.integers(2**62) == rng_b.integers(2**62)  # the generator is left where the K fits leave it


def test_stack_and_unstack_are_inverse():
    critics = _critics(3)
    stacked = stack(critics)
    x, y = _rows(10, 1)
    per_copy = stacked(torch.stack([x, x + 1, x - 1]), torch.stack([y, y, -y]))
    for k, (xk, yk) in enumerate([(x, y), (x + 1, y), (x - 1, -y)]):
        torch.testing.assert_close(per_copy[k], critics[k](xk, yk))
        torch.testing.assert_close(unstack(stacked, k)(xk, yk), critics[k](xk, yk))


def test_only_separable_critics_of_one_configuration_stack():
    assert stackable(_critics(2)) and stackable(_critics(2, wrapped=True))
    assert not stackable(_critics(1))
    assert not stackable([ConcatCritic(3, 2, hidden=8) for _ in range(2)])
    assert not stackable([SeparableCritic(3, 2, hidden=8), SeparableCritic(3, 2, hidden=16)])
    with pytest.raises(ValueError, match="separable critics of one configuration"):
        fit_stacked([ConcatCritic(3, 2, hidden=8)] * 2, mie.get("infonce"), [_rows(20, 0)] * 2, [3, 3],
                    FitConfig(steps=3, batch=8, lr=1e-3), np.random.default_rng(0))
    with pytest.raises(ValueError, match="stack needs critics of one kind"):
        stack([SeparableCritic(3, 2, hidden=8), SeparableCritic(3, 2, hidden=16)])


def test_stacked_refit_diverging_raises():
    critics = _critics(2)
    with torch.no_grad():
        critics[1].g[0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="diverged at step 1 of refit 1"):
        fit_stacked(critics, mie.get("infonce"), [_rows(50, 0), _rows(50, 1)], [3, 3],
                    FitConfig(steps=3, batch=16, lr=1e-3), np.random.default_rng(0))


def test_estimate_crossfit_stacked_equals_refits_in_turn(monkeypatch):
    """The whole call: the cross-fitted read-out with stacked refits equals the one with K refits in turn."""
    g = np.random.default_rng(0)
    x = g.standard_normal((1200, 3))
    y = np.tanh(x[:, :2]) + 0.4 * g.standard_normal((1200, 2))
    options = dict(seed=0, folds=3, steps=300, copula=False, race=False, progress=False)
    calls = []
    monkeypatch.setattr(trained, "fit_stacked", lambda *a, **k: calls.append(1) or fit_stacked(*a, **k))
    stacked = mie.estimate(x, y, **options)
    assert calls == [1]  # the refits went through the stacked path
    monkeypatch.setattr(TrainedCandidate, "refit_folds", Candidate.refit_folds)
    in_turn = mie.estimate(x, y, **options)
    assert stacked.settings.read_out_folds == 3 and stacked.settings.chosen_critic == "trained"
    assert stacked.mi == pytest.approx(in_turn.mi, abs=1e-4)  # the same fits, up to rounding
    assert stacked.stderr == pytest.approx(in_turn.stderr, rel=1e-3)


def test_other_refittable_critics_are_refitted_in_turn(monkeypatch):
    """A critic that cannot stack (bilinear) keeps the refits in turn: fit_stacked is never called."""
    monkeypatch.setattr(trained, "fit_stacked", lambda *a, **k: pytest.fail("fit_stacked called"))
    g = np.random.default_rng(1)
    x = g.standard_normal((900, 2))
    y = x + g.standard_normal((900, 2))
    r = mie.estimate(x, y, seed=0, folds=3, steps=100, copula=False, critic="bilinear", progress=False)
    assert r.settings.chosen_critic == "trained" and r.settings.read_out_folds == 3
    # two pairs of correlation 1/√2 (½ log 2 each): a short training reads part of it, never more
    assert 0.1 < r.mi < np.log(2) + 3 * r.stderr
