"""Discrete and mixed variables: entropies from counts, the contingency-table estimate (against a
naive plug-in and jackknife, and against the exact MI of a known channel), the detection rule and the
``discrete=`` option, the Barber-Agakov classifier candidate (against a naive read-out) and the cap
of the interval at the discrete side's entropy."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import mi_estimators as mie
from mi_estimators.columns import DeterminedColumnsWarning
from mi_estimators.discrete import (AUTO_MAX_VALUES, AUTO_ROWS_PER_VALUE, DiscreteSide, codes, contingency_mi,
                                    contingency_table, discrete_sides, entropy, mutual_information_plugin,
                                    pmf_mutual_information)
from mi_estimators.estimation import EstimateOptions
from mi_estimators.estimation.candidates.discrete import FLOOR, BarberAgakovBound, ClassifierCritic, cap
from mi_estimators.fit import held_out

FAST = dict(steps=100, eval_every=50, critic_options={"hidden": 16}, batch_size=64)


def _naive_plugin_mi(x, y):
    """I = H(X) + H(Y) − H(X, Y) of the empirical frequencies, through scipy.stats.entropy."""
    pairs = [(a, b) for a, b in zip(x.tolist(), y.tolist())]
    count = lambda vals: np.array([vals.count(v) for v in sorted(set(vals))], dtype=float)  # noqa: E731
    return (stats.entropy(count(x.tolist())) + stats.entropy(count(y.tolist())) - stats.entropy(count(pairs)))


def _channel(k=4, err=0.3):
    """X uniform on k values, Y = X with probability 1 − err, else one of the k − 1 others, uniformly."""
    w = np.full((k, k), err / (k - 1))
    np.fill_diagonal(w, 1 - err)
    return w / k  # joint pmf


def _sample(pmf, n, rng):
    cells = rng.choice(pmf.size, size=n, p=pmf.ravel())
    return cells // pmf.shape[1], cells % pmf.shape[1]


# ---------------------------------------------------------------- entropies and the contingency table
def test_miller_madow_entropy_and_its_stderr_match_a_naive_computation():
    rng = np.random.default_rng(0)
    labels = rng.choice(5, size=300, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    h, se = entropy(labels)
    counts = np.bincount(labels)
    assert h == pytest.approx(stats.entropy(counts) + (5 - 1) / (2 * 300), abs=1e-12)
    logp = [math.log(counts[v] / 300) for v in labels]
    assert se == pytest.approx(np.std(logp) / math.sqrt(300), abs=1e-12)


def test_contingency_plugin_and_miller_madow_match_naive_formulas():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 3, 200), rng.integers(0, 4, 200)
    y = np.where(rng.random(200) < 0.5, x, y)
    table = contingency_table(x, y)
    assert table.sum() == 200 and table.shape == (3, 4)
    naive = _naive_plugin_mi(x, y)
    r = contingency_mi(table)
    assert r["plugin"] == pytest.approx(naive, abs=1e-12)
    assert mutual_information_plugin(table) == pytest.approx(naive, abs=1e-12)
    cells = np.count_nonzero(table)
    assert r["miller_madow"] == pytest.approx(naive + (2 + 3 - (cells - 1)) / 400, abs=1e-12)


def test_contingency_jackknife_matches_a_naive_leave_one_out():
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    y = np.where(rng.random(40) < 0.6, x, y)
    n = len(x)
    loo = np.array([_naive_plugin_mi(np.delete(x, i), np.delete(y, i)) for i in range(n)])
    jack = n * _naive_plugin_mi(x, y) - (n - 1) * loo.mean()
    se = math.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    r = contingency_mi(contingency_table(x, y))
    assert r["mi"] == pytest.approx(jack, abs=1e-10) and r["stderr_jackknife"] == pytest.approx(se, abs=1e-10)
    assert r["stderr"] >= r["stderr_jackknife"] and r["stderr"] >= math.sqrt(2 * 4) / (2 * n) - 1e-15


def test_pmf_mutual_information_of_a_symmetric_channel_is_log_k_minus_the_noise_entropy():
    pmf = _channel(4, 0.3)
    noise = stats.entropy([0.7, 0.1, 0.1, 0.1])
    assert pmf_mutual_information(pmf) == pytest.approx(math.log(4) - noise, abs=1e-12)
    assert pmf_mutual_information(np.outer([0.2, 0.8], [0.5, 0.3, 0.2])) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="sum to 1"):
        pmf_mutual_information(np.ones((2, 2)))


def test_the_jackknife_removes_most_of_the_plugin_bias_on_a_known_channel():
    pmf, rng = _channel(4, 0.3), np.random.default_rng(3)
    truth = pmf_mutual_information(pmf)
    runs = [contingency_mi(contingency_table(*_sample(pmf, 100, rng))) for _ in range(300)]
    plugin_bias = np.mean([r["plugin"] for r in runs]) - truth
    jack_bias = np.mean([r["mi"] for r in runs]) - truth
    assert plugin_bias > 0.02  # first order (K_x − 1)(K_y − 1)/(2n) = 0.045
    assert abs(jack_bias) < plugin_bias / 3
    assert np.mean([abs(r["mi"] - truth) <= 1.96 * r["stderr"] for r in runs]) > 0.85


def test_estimate_with_both_sides_discrete_is_the_contingency_table_and_covers_the_known_mi():
    pmf = _channel(4, 0.3)
    x, y = _sample(pmf, 20000, np.random.default_rng(4))
    r = mie.estimate(x, y)
    truth = pmf_mutual_information(pmf)
    s = r.settings
    assert s.discrete == "both" and s.chosen_critic == "contingency" and s.n == 20000
    assert r.mi == pytest.approx(contingency_mi(contingency_table(x, y))["mi"], abs=1e-12)
    assert abs(r.mi - truth) < 4 * r.stderr and r.ci[0] <= truth <= r.ci[1]
    assert 0 <= r.ci[0] <= r.mi <= r.ci[1] <= s.mi_cap <= math.log(4)
    assert "discrete: both" in str(r) and "contingency" in str(r)


def test_independent_discrete_sides_give_an_interval_from_zero():
    rng = np.random.default_rng(5)
    r = mie.estimate(rng.integers(0, 3, 600), rng.integers(0, 2, 600))
    assert r.settings.chosen_critic == "contingency" and r.ci[0] == 0.0 and abs(r.mi) < 3 * r.stderr


# ---------------------------------------------------------------- which side is discrete
def test_the_auto_rule_takes_labels_and_leaves_continuous_and_sparse_sides():
    rng = np.random.default_rng(6)
    n = 500
    labels, z = rng.integers(0, 3, n), rng.normal(size=(n, 2))
    assert sorted(discrete_sides(z, labels)) == ["y"] and sorted(discrete_sides(labels, z)) == ["x"]
    assert discrete_sides(z, z) == {}
    many = n // AUTO_ROWS_PER_VALUE + 1                    # too few rows per value
    assert discrete_sides(z, np.arange(n) % many) == {}
    assert "y" in discrete_sides(z, np.arange(n) % (many - 1))
    wide = np.arange(100 * (AUTO_MAX_VALUES + 1)) % (AUTO_MAX_VALUES + 1)   # too many values
    assert discrete_sides(wide, wide) == {}
    two_bits = rng.integers(0, 2, size=(n, 2))             # a side is its rows: 4 values
    side = discrete_sides(z, two_bits)["y"]
    assert side.values == 4 and side.entropy == pytest.approx(entropy(codes(two_bits)[0])[0])


def test_declared_discrete_sides_and_bad_values():
    rng = np.random.default_rng(7)
    z, labels = rng.normal(size=(300, 1)), rng.integers(0, 40, 300)
    assert discrete_sides(z, labels) == {}                 # 40 values: not by the auto rule
    assert sorted(discrete_sides(z, labels, "y")) == ["y"] and discrete_sides(z, labels, "none") == {}
    with pytest.raises(ValueError, match="distinct values"):
        discrete_sides(z, labels, "both")                  # z is continuous
    with pytest.raises(ValueError, match="discrete must be one of"):
        discrete_sides(z, labels, "yes")
    with pytest.raises(ValueError, match="did you mean 'both'"):
        EstimateOptions(discrete="bothh")
    with pytest.raises(ValueError, match="distinct values"):
        mie.estimate(z, labels, discrete="x")


# ---------------------------------------------------------------- the Barber-Agakov read-out
def _fixed_critic(side, classes, values, temperature):
    torch.manual_seed(0)
    net = nn.Linear(2, len(classes))
    return ClassifierCritic(net, torch.as_tensor(classes, dtype=torch.float32), side, values, temperature).eval()


def test_barber_agakov_read_out_matches_a_naive_cross_entropy():
    rng = np.random.default_rng(8)
    x = torch.as_tensor(rng.normal(size=(50, 2)), dtype=torch.float32)
    classes = [[-1.0], [0.0], [2.5]]
    y = torch.as_tensor(rng.choice([-1.0, 0.0, 2.5, 7.0], size=(50, 1)), dtype=torch.float32)  # 7: unseen
    critic, h = _fixed_critic("y", classes, 4, 1.3), 1.2
    value, _ = held_out(critic, BarberAgakovBound(h), x, y, block=64, groups=0)
    naive = []
    for xi, yi in zip(x, y):
        logits = critic.net(xi[None])[0] / 1.3
        p = [math.exp(v) / sum(math.exp(u) for u in logits.tolist()) for v in logits.tolist()]
        q = [(1 - FLOOR) * pk + FLOOR / 4 for pk in p]
        k = [c[0] for c in classes].index(float(yi)) if float(yi) in (-1.0, 0.0, 2.5) else None
        naive.append(math.log(q[k] if k is not None else FLOOR / 4))
    assert value == pytest.approx(h + np.mean(naive), abs=1e-5)
    # the mirror image: x discrete, the classifier reads y
    mirror = _fixed_critic("x", classes, 4, 1.3)
    assert held_out(mirror, BarberAgakovBound(h), y, x, 64, groups=0)[0] == pytest.approx(value, abs=1e-6)


def _mixture(n, seed, means=(-2.0, 0.0, 2.0)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(means), n)
    x = np.asarray(means)[labels] + rng.normal(size=n)
    grid = np.linspace(-12, 12, 20001)
    dens = np.array([stats.norm.pdf(grid - m) for m in means])
    mix = dens.mean(0)
    truth = float(np.mean([np.trapezoid(d * np.log(d / mix), grid) for d in dens]))
    return x, labels, truth


def test_a_labelled_mixture_is_read_out_by_the_classifier_and_capped_at_the_label_entropy():
    x, labels, truth = _mixture(1000, 9)
    r = mie.estimate(x, labels, seed=0, **FAST)
    s = r.settings
    assert s.discrete == "y" and "classifier" in s.monitor and s.chosen_critic == "classifier"
    assert s.read_out == "barber-agakov" and s.read_out_folds == 5
    assert abs(r.mi - truth) < 0.08 and r.ci[0] <= truth <= r.ci[1]
    assert r.ci[1] <= s.mi_cap <= math.log(3) and s.entropy["y"] == pytest.approx(entropy(labels)[0])
    assert "discrete: y" in str(r) and "Barber-Agakov" in str(r)
    mirror = mie.estimate(labels, x, seed=0, **FAST)
    assert mirror.settings.discrete == "x" and abs(mirror.mi - truth) < 0.08


def test_the_interval_never_exceeds_the_entropy_of_the_discrete_side():
    rng = np.random.default_rng(10)
    labels = rng.choice(3, size=900, p=[0.6, 0.3, 0.1])
    x = labels + 0.01 * rng.normal(size=900)          # x determines the label: I = H(Y)
    r = mie.estimate(x, labels, seed=0, **FAST)
    h_plugin = stats.entropy(np.bincount(labels))
    assert r.settings.mi_cap <= math.log(3)
    assert r.mi <= r.ci[1] <= r.settings.mi_cap and r.ci_heldout[1] <= r.settings.mi_cap
    assert h_plugin - 0.1 < r.mi <= h_plugin + 0.01   # a lower bound: the classifier is almost sure
    with pytest.warns(DeterminedColumnsWarning, match="discrete variate"):
        both = mie.estimate(labels, labels * 2 + 1)
    assert both.ci[1] <= both.settings.mi_cap <= math.log(3)


def test_cap_bounds_every_end_by_the_smallest_entropy_upper_limit():
    code = np.zeros(4, int)
    sides = {"y": DiscreteSide("y", code, 3, 1.0, 0.05), "x": DiscreteSide("x", code, 2, 0.6, 0.1)}
    top, mi, ci, held = cap(sides, 0.9, (0.5, 1.4), (0.6, 1.0))
    assert top == pytest.approx(math.log(2))          # 0.6 + 1.96 * 0.1 > log 2: no 2-valued variable has more
    assert mi == ci[1] == held[1] == top and ci[0] == 0.5 and held[0] == 0.6
    assert cap({}, 5.0, (4.0, 6.0)) == (None, 5.0, (4.0, 6.0))


def test_discrete_none_keeps_the_continuous_candidates_only():
    x, labels, _ = _mixture(600, 11)
    r = mie.estimate(x, labels, seed=0, discrete="none", steps=60, eval_every=20, critic_options={"hidden": 16})
    assert r.settings.discrete == "none" and "classifier" not in r.settings.monitor and r.settings.mi_cap is None


def test_cli_has_a_discrete_flag(tmp_path, capsys):
    import json

    from mi_estimators import cli

    rng = np.random.default_rng(12)
    x, y = _sample(_channel(3, 0.2), 600, rng)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert cli.main(["estimate", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--discrete", "both",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["discrete"] == "both"
    with pytest.raises(SystemExit):
        cli.main(["estimate", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--discrete", "maybe"])
    with pytest.raises(SystemExit):
        cli.main(["estimate", "--help"])
    assert "--discrete" in capsys.readouterr().out
