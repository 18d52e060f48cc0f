"""estimate() at large n: the sizes resolved from the rows, the read-out's standard error in blocks,
and the scaling benchmark's quick mode."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators.estimation import EstimateOptions, Splits, read_out
from mi_estimators.estimation.readout import ROW_CHUNK, block_value, rowwise
from mi_estimators.estimation.options import (AUTO_BATCH, MAX_AUTO_MONITOR_ROWS, MAX_AUTO_STEPS, SMALL_ROWS,
                                              scale_for_rows)
from mi_estimators.fit import held_out

ROOT = Path(__file__).resolve().parents[1]
SIZES = [100, 5000, SMALL_ROWS, SMALL_ROWS + 1, 50_000, 80_000, 320_000, 10**6, 10**8]


@pytest.mark.parametrize("critic, dims", [("separable", (5, 5)), ("concat", (1, 1))])
def test_up_to_small_rows_the_sizes_do_not_depend_on_n(critic, dims):
    small = [EstimateOptions().resolve(*dims, n) for n in (None, 100, 5000, SMALL_ROWS)]
    assert all(o == small[0] for o in small)
    o = small[0]
    assert (o.critic, o.steps, o.batch_size, o.eval_every, o.val_fraction, o.folds) == (
        critic, 2000, AUTO_BATCH[critic], 100, 0.1, 5)


@pytest.mark.parametrize("kind", ["separable", "concat"])
def test_the_budget_grows_with_the_rows_and_the_monitor_is_capped(kind):
    scales = [scale_for_rows(n, kind) for n in SIZES]
    for a, b in zip(scales, scales[1:]):
        assert a.steps <= b.steps and a.batch_growth <= b.batch_growth and a.eval_every <= b.eval_every
    for n, s in zip(SIZES, scales):
        assert s.steps <= MAX_AUTO_STEPS and s.folds == (5 if n <= SMALL_ROWS else 1)
        assert min(0.1 * n, MAX_AUTO_MONITOR_ROWS) == pytest.approx(s.val_fraction * n)
        assert s.eval_every * 20 == pytest.approx(s.steps, abs=20)  # patience is the same share of the budget
    assert scale_for_rows(10**6, kind).steps * scale_for_rows(10**6, kind).batch_growth >= 7 * 2000
    assert max(s.batch_growth for s in scales) == (2 if kind == "concat" else 4)


def test_resolve_keeps_every_size_the_caller_gave():
    given = dict(steps=123, batch_size=7, eval_every=9, val_fraction=0.3, folds=3)
    o = EstimateOptions(**given).resolve(5, 5, 10**6)
    assert {k: getattr(o, k) for k in given} == given
    # a given step count keeps evaluations at least every 100 steps or 20 times per run
    assert EstimateOptions(steps=300).resolve(5, 5, 10**6).eval_every == 100
    assert EstimateOptions(steps=30_000).resolve(5, 5, 10**6).eval_every == scale_for_rows(10**6).eval_every


def test_val_fraction_none_still_checks_the_test_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        EstimateOptions(test_fraction=0.95)
    with pytest.raises(ValueError, match="val_fraction"):
        EstimateOptions(val_fraction=0.0)


class _Bilinear(torch.nn.Module):
    def forward(self, x, y):
        return 0.8 * x @ y.T


def _splits(n: int, seed: int = 0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = 0.6 * x + 0.8 * torch.randn(n, 2, generator=g)
    return Splits((x, y), (x, y), (x, y))


class _Chosen:
    critic, bound = _Bilinear(), mie.get("infonce")


class _ChosenDV:
    critic, bound = _Bilinear(), mie.get("dv")


@pytest.mark.parametrize("groups", [20, 5])
@pytest.mark.parametrize("chosen", [_Chosen, _ChosenDV], ids=["infonce", "dv"])
def test_many_blocks_give_the_standard_error_of_the_block_mean(groups, chosen):
    """m >= G blocks: the mean of the blocks' values and sd(θ_b, ddof=1)/√m, against a naive loop."""
    data, block = _splits(2000), 80  # 25 blocks of 80 rows
    mi, se = read_out(chosen(), data, EstimateOptions(eval_batch=block, jackknife_groups=groups))
    x, y = data.test
    edges = np.linspace(0, 2000, 26).astype(int)
    values = [float(chosen.bound(_Bilinear()(x[a:b], y[a:b]))) for a, b in zip(edges[:-1], edges[1:])]
    assert mi == pytest.approx(np.mean(values), abs=1e-6)
    assert se == pytest.approx(np.std(values, ddof=1) / 5, rel=1e-5)


class _ChosenSeparable:
    def __init__(self):
        from mi_estimators.critics import SeparableCritic

        torch.manual_seed(0)
        self.critic, self.bound = SeparableCritic(2, 2, hidden=8, embed_dim=4).eval(), mie.get("infonce")


@pytest.mark.parametrize("largest, groups", [(300, 2), (300, 20), (2000, 20), (2000, 0)])
def test_infonce_of_a_separable_critic_reads_blocks_of_up_to_the_largest_block(monkeypatch, largest, groups):
    """⌈n / largest⌉ blocks (7 of at most 300 rows, or one of 2,000), each InfoNCE on its whole
    matrix; the standard error of the blocks' mean (7 >= 2 groups), their jackknife variances over
    ⌈G / m⌉ groups each, added (7 < 20), or none (G = 0): against the naive computations."""
    from mi_estimators.estimation import readout
    from mi_estimators.jackknife import delete_group_values

    monkeypatch.setattr(readout, "MAX_READOUT_BLOCK", largest)
    chosen, data = _ChosenSeparable(), _splits(2000)
    opts = EstimateOptions(eval_batch=50, jackknife_groups=groups)
    assert readout.large_blocks(chosen, 2000, opts) and not readout.large_blocks(_Chosen(), 2000, opts)
    mi, se = read_out(chosen, data, opts)
    x, y = data.test
    m = math.ceil(2000 / largest)
    edges = np.linspace(0, 2000, m + 1).astype(int)
    with torch.no_grad():
        scores = [chosen.critic(x[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    values = [float(chosen.bound(s)) for s in scores]
    assert max(b - a for a, b in zip(edges[:-1], edges[1:])) <= largest
    assert mi == pytest.approx(np.mean(values), abs=1e-5)
    if groups == 0:
        assert math.isnan(se)
    elif m >= groups:
        assert se == pytest.approx(np.std(values, ddof=1) / math.sqrt(m), rel=1e-3, abs=1e-6)
    else:
        g = groups if m == 1 else math.ceil(groups / m)
        loos = [delete_group_values(chosen.bound, s, g) for s in scores]
        var = [(g - 1) / g * ((v - v.mean()) ** 2).sum() for v in loos]
        assert se == pytest.approx(math.sqrt(sum(var)) / m, rel=1e-3, abs=1e-6)


def test_block_value_scores_infonce_in_row_chunks_as_the_whole_matrix():
    x, y = _splits(1300).test  # more rows than ROW_CHUNK, and not a multiple of it
    assert 1300 > ROW_CHUNK and 1300 % ROW_CHUNK
    whole = float(_Chosen.bound(_Bilinear()(x, y)))
    value, loo = block_value(_Bilinear(), _Chosen.bound, x, y)
    assert value == pytest.approx(whole, abs=1e-5) and loo is None
    clipped = mie.get("infonce", clip=5.0)  # not a mean of row terms
    assert not rowwise(clipped) and rowwise(_Chosen.bound)
    with pytest.raises(ValueError, match="plain InfoNCE"):
        block_value(_Bilinear(), clipped, x, y)


def test_block_value_of_a_separable_critic_uses_its_embeddings_once():
    from mi_estimators.critics import ProjectedCritic, SeparableCritic
    from mi_estimators.estimation import readout
    from mi_estimators.jackknife import delete_group_values

    torch.manual_seed(0)
    x, y = _splits(1100).test
    bare = SeparableCritic(2, 2, hidden=8, embed_dim=4)
    projected = ProjectedCritic(SeparableCritic(2, 2, hidden=8, embed_dim=4), torch.eye(2)[:1], torch.eye(2)[1:])
    for critic in (bare, projected):
        assert readout._embeddings(critic, x, y) is not None  # the path under test
        scores = critic(x, y).detach()
        value, loo = block_value(critic, _Chosen.bound, x, y, groups=7)
        assert value == pytest.approx(float(_Chosen.bound(scores)), abs=1e-5)
        np.testing.assert_allclose(loo, delete_group_values(_Chosen.bound, scores, 7), atol=1e-5)


def test_a_few_blocks_share_the_jackknife_groups_and_one_block_keeps_them_all():
    data = _splits(1000)
    opts = EstimateOptions(eval_batch=250, jackknife_groups=20)  # 4 blocks: 5 groups each
    assert read_out(_Chosen(), data, opts) == held_out(_Bilinear(), _Chosen.bound, *data.test, 250, groups=5)
    one = EstimateOptions(eval_batch=4096, jackknife_groups=20)
    assert read_out(_Chosen(), data, one) == held_out(_Bilinear(), _Chosen.bound, *data.test, 4096, groups=20)
    none = read_out(_Chosen(), data, EstimateOptions(eval_batch=50, jackknife_groups=0))
    assert math.isnan(none[1])


def test_above_small_rows_a_refittable_winner_is_read_out_on_the_test_split():
    rng = np.random.default_rng(0)
    n = SMALL_ROWS + 1
    x = rng.normal(size=(n, 2))
    y = 0.5 * x + rng.normal(size=(n, 2))
    r = mie.estimate(x, y, steps=20, copula=False, critic_options={"hidden": 8}, eval_batch=500)
    s = r.settings
    assert s.chosen_critic == "trained" and s.read_out_folds == 1 and s.options.folds == 1
    assert s.n_val == round(0.1 * n) and (s.options.steps, s.options.eval_every) == (20, 100)
    assert s.n_train + s.n_val + s.n_test == n


def test_the_scaling_benchmark_quick_mode_measures_both_estimators(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_estimate_scaling as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    result = bench.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "scaling.json").read_text())
    assert saved == json.loads(json.dumps(result)) and (tmp_path / "scaling.png").stat().st_size > 0
    (row,) = saved["rows"]
    task = mie.get(saved["task"], kind="tasks")
    for kind in ("estimate", "ksg"):
        m = row[kind]
        assert m["truth"] == pytest.approx(task.mi) and m["cpu"] > 0 and m["wall"] > 0
        assert 0 < m["rss_before"] <= m["rss_peak"]
    assert row["estimate"]["steps"] == 40 and row["estimate"]["steps_run"] <= 40
    assert f"{row['estimate']['mi']:.4f}" in (tmp_path / "scaling.md").read_text()
