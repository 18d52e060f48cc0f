"""The race of estimate()'s trained critic against the copula candidate (mi_estimators.fit.Race):
when it stops a fit, and that stopping a fit that cannot win changes nothing but the time."""

import math

import numpy as np
import torch

import mi_estimators as mie
from mi_estimators.critics import SeparableCritic
from mi_estimators.estimation.candidates import trained
from mi_estimators.fit import FitConfig, Race, fit_critic


def test_the_rule():
    race = Race(rival=1.0, after=300, window=2)
    plateau = [0.5, 0.7, 0.8, 0.8]
    assert race.lost(400, plateau) and not race.lost(200, plateau)   # not before `after`
    assert not race.lost(400, plateau[:2])                            # not before `window` + 1 evaluations
    assert not race.lost(400, [0.2, 0.5, 0.8])                        # 0.8 + 0.6 could still catch 1.0
    assert not race.lost(400, [0.9, 1.0, 1.05])                       # ahead of the rival: never
    assert not Race(rival=math.nan, after=0, window=1).lost(400, plateau)
    assert not race.lost(400, [-math.inf, -math.inf, 0.5])            # an infinite gain can catch anything


def _fit(race, steps=300):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.randn(600, 2)
    y = x + torch.randn(600, 2)
    critic = SeparableCritic(2, 2, hidden=8, embed_dim=4)
    config = FitConfig(steps=steps, batch=64, lr=1e-3, eval_every=20, patience=100)
    return fit_critic(critic, mie.get("infonce"), (x[:400], y[:400]), (x[400:], y[400:]), config, rng=rng, race=race)


def test_fit_critic_stops_at_the_first_evaluation_the_race_is_lost():
    free = _fit(None)
    assert not free.lost_race and free.history["step"][-1] == 300
    out = _fit(Race(rival=1e6, after=100, window=2))  # out of reach: lost as soon as the rule may fire
    assert out.lost_race and out.stopped_early and out.history["eval_step"][-1] == 100
    assert out.history["monitor"] == free.history["monitor"][:5]  # the same fit until then
    never = _fit(Race(rival=-1e6, after=0, window=1))
    assert not never.lost_race and never.history["monitor"] == free.history["monitor"]


def test_a_lost_race_changes_only_the_time(monkeypatch):
    """Gaussian data: the copula candidate is exact and wins. Racing stops the trained critic
    earlier; the chosen candidate, its read-out and its held-out interval are bitwise the same
    (the trained fit draws its batches from its own generator)."""
    monkeypatch.setattr(trained, "RACE_AFTER", 100)
    x, y = mie.get("gauss-2x2-mi1", kind="tasks").sample(1000, seed=0)
    opts = dict(seed=0, steps=400, eval_every=50, batch_size=64, critic_options={"hidden": 8})
    raced, full = mie.estimate(x, y, **opts), mie.estimate(x, y, race=False, **opts)
    assert raced.settings.chosen_critic == full.settings.chosen_critic == "copula"
    assert raced.history["step"][-1] < full.history["step"][-1]
    assert (raced.mi, raced.stderr, raced.ci_heldout) == (full.mi, full.stderr, full.ci_heldout)
    assert raced.ci[1] >= raced.mi and raced.settings.monitor["trained"] <= full.settings.monitor["trained"]
