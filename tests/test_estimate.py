"""estimate(): input checks, accuracy on an easy closed-form task, the held-out jackknife against a
naive reference, determinism, third-party bounds, the `mi-estimators estimate` command."""

import copy
import math

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators import cli
from mi_estimators.copula import EllipticalCopulaCritic
from mi_estimators.critics import ConcatCritic, SeparableCritic
from mi_estimators.estimation.candidates.features import ValueFeatures
from mi_estimators.estimation.refit import fit_stacked
from mi_estimators.arrays import as_array, marginal_transform
from mi_estimators.fit import FitConfig, fit_critic, held_out, score_matrix
from mi_estimators.io import load_array

FAST = dict(steps=60, eval_every=20, critic_options={"hidden": 16}, batch_size=64)


@pytest.fixture(scope="module")
def gauss():
    task = mie.get("gauss-1x1-mi0.5", kind="tasks")
    return task, *task.sample(1500, seed=0)


def test_estimate_is_accurate_on_an_easy_gaussian(gauss):
    task, x, y = gauss
    r = mie.estimate(x, y, bound="infonce", steps=400, critic_options={"hidden": 32}, seed=0)
    assert abs(r.mi - task.mi) < 0.15
    assert r.ci[0] < r.mi < r.ci[1] and r.stderr > 0
    assert r.settings.n_train + r.settings.n_val + r.settings.n_test == 1500
    assert len(r.history["train"]) == r.history["step"][-1] and r.history["monitor"]


def test_numpy_torch_and_1d_inputs_agree(gauss):
    _, x, y = gauss
    a = mie.estimate(x, y, seed=3, **FAST)
    b = mie.estimate(torch.as_tensor(x), torch.as_tensor(y), seed=3, **FAST)
    c = mie.estimate(x[:, 0], list(y[:, 0]), seed=3, **FAST)
    assert a.mi == pytest.approx(b.mi, abs=1e-5) and a.mi == pytest.approx(c.mi, abs=1e-5)
    assert math.isfinite(a.mi) and a.settings.device in ("cpu", "cuda:0")


def test_early_stopping_on_independent_data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 2)), rng.normal(size=(600, 2))
    r = mie.estimate(x, y, bound="infonce", steps=2000, eval_every=10, patience=2, seed=0,
                     critic_options={"hidden": 16})
    assert r.stopped_early and r.history["step"][-1] < 2000
    assert abs(r.mi) < 0.2  # no dependence, nothing to find


def test_third_party_bound_object_works(gauss):
    _, x, y = gauss

    class MyNCE:  # not a Bound subclass: callable on scores, with .loss
        def __call__(self, scores):
            return (scores.diag() - torch.logsumexp(scores, 1) + math.log(scores.shape[0])).mean()

        def loss(self, scores):
            return -self(scores)

    r = mie.estimate(x, y, bound=MyNCE(), seed=0, **FAST)
    ref = mie.estimate(x, y, bound="infonce", seed=0, **FAST)
    assert r.mi == pytest.approx(ref.mi, abs=1e-4)


@pytest.mark.parametrize("critic_cls", [SeparableCritic, ConcatCritic])
def test_held_out_jackknife_matches_naive(critic_cls):
    torch.manual_seed(0)
    critic = critic_cls(2, 2, hidden=8)
    x, y = torch.randn(90, 2), torch.randn(90, 2)
    x[:, 0] += y[:, 0]
    bound = mie.get("infonce")
    with torch.no_grad():
        full = critic(x, y)
    torch.testing.assert_close(score_matrix(critic, x, y), full)
    value, se = held_out(critic, bound, x, y, block=1000, groups=6)
    groups = np.array_split(np.arange(90), 6)
    loo = []
    for g in groups:  # in float64: the fast path (mi_estimators.jackknife) sums in float64, the naive bound
        keep = np.setdiff1d(np.arange(90), g)  # in float32 would add its own round-off of ~1e-7 nats per value
        loo.append(float(bound(full.double()[keep][:, keep])))
    loo = np.array(loo)
    assert value == pytest.approx(float(bound(full)), abs=1e-6)
    assert se == pytest.approx(math.sqrt(5 / 6 * ((loo - loo.mean()) ** 2).sum()), rel=1e-6)
    # two blocks: the mean of each block's full-matrix value
    v2, _ = held_out(critic, bound, x, y, block=45, groups=0)
    assert v2 == pytest.approx((float(bound(full[:45, :45])) + float(bound(full[45:, 45:]))) / 2, abs=1e-6)


@pytest.mark.parametrize("x, y, match", [
    (np.full((100, 2), np.nan), np.zeros((100, 1)), "NaN"),
    (np.r_[np.zeros((99, 1)), [[np.inf]]], np.zeros((100, 1)), "infinite"),
    (np.zeros((100, 1)), np.zeros((90, 1)), "same number of samples"),
    (np.zeros((20, 1)), np.zeros((20, 1)), "at least"),
    (np.array([["a"], ["b"]] * 50), np.zeros((100, 1)), "numeric"),
    (np.zeros((100, 2, 2)), np.zeros((100, 1)), "reshape"),
])
def test_bad_input_raises_with_a_fix(x, y, match):
    with pytest.raises(ValueError, match=match):
        mie.estimate(x, y)


def test_bad_options_raise(gauss):
    _, x, y = gauss
    with pytest.raises(ValueError, match="steps"):
        mie.estimate(x, y, steps=0)
    with pytest.raises(ValueError, match="bound must be"):
        mie.estimate(x, y, bound=3)
    with pytest.raises(mie.UnknownNameError, match="infonce"):
        mie.estimate(x, y, bound="infonse")
    with pytest.raises(ValueError, match="device"):
        mie.estimate(x, y, device="tpu:x")
    with pytest.raises(ValueError, match="ema must be a number in"):
        mie.estimate(x, y, ema=1.0)


def test_load_array_formats(tmp_path):
    data = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "a.npy", data)
    np.savez(tmp_path / "a.npz", first=data, second=data * 2)
    (tmp_path / "a.csv").write_text("u,v,w\n" + "\n".join(",".join(map(str, r)) for r in data))
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.npy"), "0,2"), data[:, [0, 2]])
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.npz"), "1:", key="second"), 2 * data[:, 1:])
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.csv"), "w,u"), data[:, [2, 0]])
    with pytest.raises(ValueError, match="no array"):
        load_array(str(tmp_path / "a.npz"), key="third")
    assert as_array([1, 2, 3], "x").shape == (3, 1)


def test_cli_estimate(tmp_path, capsys, gauss):
    _, x, y = gauss
    table = np.hstack([x, y])
    np.savetxt(tmp_path / "xy.csv", table, delimiter=",", header="a,b", comments="")
    rc = cli.main(["estimate", str(tmp_path / "xy.csv"), "--x-cols", "a", "--y-cols", "b", "--steps", "40",
                   "--json"])
    assert rc == 0
    out = capsys.readouterr().out
    assert '"mi"' in out and '"ci95"' in out
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert cli.main(["estimate", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--steps", "40",
                     "--bound", "nwj"]) == 0
    assert "nats" in capsys.readouterr().out


def test_estimate_stays_the_function_after_its_module_is_imported():
    import importlib

    importlib.import_module("mi_estimators.estimation")
    from mi_estimators.estimation import estimate

    assert mie.estimate is estimate and callable(mie.estimate)


# ---- the marginal transform fitted on the training rows ------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy import stats  # noqa: E402



@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(5, 300), ties=st.booleans())
def test_rank_transform_is_normal_scores_of_the_training_rows(seed, n, ties):
    rng = np.random.default_rng(seed)
    a = rng.standard_cauchy((n, 3))
    if ties:
        a = np.round(a)  # many tied values: they must share one (mid-)rank
    train = rng.permutation(n)[: max(2, n // 2)]
    z = marginal_transform(a, train, "rank")
    # naive reference on the training rows: scipy's average ranks, Phi^-1(rank / m) at mid-ranks
    m = len(train)
    for j in range(a.shape[1]):
        col = a[train, j]
        if len(np.unique(col)) < 2:
            continue
        ref = stats.norm.ppf((stats.rankdata(col) - 0.5) / m)
        np.testing.assert_allclose(z[train, j], ref, atol=1e-9)
    # every row (held-out ones too) maps monotonically and finitely
    assert np.isfinite(z).all()
    for j in range(a.shape[1]):
        order = np.argsort(a[:, j], kind="stable")
        assert (np.diff(z[order, j]) >= -1e-12).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_rank_transform_is_invariant_to_increasing_maps(seed):
    """I(X;Y) is unchanged by strictly increasing maps of a column, and so is what the critic sees."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((200, 2))
    train = rng.permutation(200)[:140]
    base = marginal_transform(a, train, "rank")
    for f in (lambda v: v ** 3, np.arcsinh, stats.norm.cdf, lambda v: np.exp(2 * v) - 7):
        np.testing.assert_allclose(marginal_transform(f(a), train, "rank"), base, atol=1e-9)


def test_zscore_and_none_and_bad_mode():
    a = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    z = marginal_transform(a, np.arange(3), "zscore")
    np.testing.assert_allclose(z[:, 0], [-1.2247449, 0, 1.2247449], atol=1e-6)
    np.testing.assert_array_equal(z[:, 1], 0)  # a constant column is only centred
    assert marginal_transform(a, np.arange(3), "none") is a
    with pytest.raises(ValueError, match="standardize"):
        mie.estimate(np.zeros((100, 1)), np.zeros((100, 1)), standardize="ranks")


def test_estimate_rank_transform_makes_it_blind_to_monotone_maps(gauss):
    _, x, y = gauss
    a = mie.estimate(x, y, seed=1, **FAST)
    b = mie.estimate(np.exp(x), y ** 3, seed=1, **FAST)
    assert a.mi == pytest.approx(b.mi, abs=1e-5) and a.settings.options.standardize == "rank"


def test_auto_critic_is_concat_in_one_plus_one_dimensions_else_separable(gauss):
    _, x, y = gauss
    opts = dict(steps=20, eval_every=10, critic_options={"hidden": 8}, copula=False)
    one = mie.estimate(x, y, seed=0, **opts)
    assert (one.settings.options.critic, one.settings.options.batch_size,
            one.settings.options.eval_batch) == ("concat", 64, 1024)
    assert one.settings.options.lr == 3e-3
    assert isinstance(one.critic, ConcatCritic)
    two = mie.estimate(np.hstack([x, x]), y, seed=0, **opts)
    assert (two.settings.options.critic, two.settings.options.batch_size,
            two.settings.options.eval_batch) == ("separable", 256, 4096)
    # on each column's normal score and its z-score (estimation/candidates/features.py)
    assert isinstance(two.critic, ValueFeatures) and isinstance(two.critic.critic, SeparableCritic)
    given = mie.estimate(x, y, critic="separable", batch_size=32, seed=0, **opts)
    assert (given.settings.options.critic, given.settings.options.batch_size) == ("separable", 32)


def test_auto_critic_on_narrow_data_lets_the_separable_critic_compete_and_it_wins_the_ai_mixture():
    # the AI mixture of Czyz et al.: the concat critic ends underfit, the separable one reads closer
    # (estimation/candidates/narrow.py); what the result reports is then the separable critic's
    task = mie.get("mixture-ai-1x1", kind="tasks")
    x, y = task.sample(3000, seed=0)
    r = mie.estimate(x, y, steps=600, seed=0)
    assert set(r.settings.monitor) == {"trained", "trained-separable", "copula"}
    assert r.settings.monitor["trained-separable"] > r.settings.monitor["trained"]
    assert r.settings.chosen_critic == "trained-separable" and r.settings.options.critic == "separable"
    assert r.settings.options.batch_size == 256 and r.settings.read_out_folds == 5
    assert isinstance(r.critic, ValueFeatures) and isinstance(r.critic.critic, SeparableCritic)
    assert abs(r.mi - task.mi) < 0.1 and r.ci[0] <= task.mi <= r.ci[1]


def test_a_named_critic_on_narrow_data_trains_that_critic_alone(gauss):
    _, x, y = gauss
    for critic in ("concat", "separable"):
        r = mie.estimate(x, y, critic=critic, seed=0, **FAST)
        assert set(r.settings.monitor) == {"trained", "copula"} and r.settings.options.critic == critic


def test_a_separable_winner_on_narrow_data_is_ensembled_and_read_out_with_its_own_options(gauss, monkeypatch):
    from mi_estimators import estimation

    def separable_first(candidates):
        return next(c for c in candidates if c.name == "trained-separable")

    monkeypatch.setattr(estimation, "choose", separable_first)
    _, x, y = gauss
    r = mie.estimate(x, y, seed=0, ensemble=2, steps=60, eval_every=20)
    assert r.settings.chosen_critic == "trained-separable" and r.settings.options.eval_batch == 4096
    members = r.critic.members
    assert len(members) == 2 and all(isinstance(m.critic, SeparableCritic) for m in members)


# --------------------------------------------------------------------------------------------
# the closed-form copula candidates, the intervals, the ensemble
# --------------------------------------------------------------------------------------------
def test_gaussian_copula_is_chosen_on_gaussian_data_and_reads_out_its_mi():
    task = mie.get("gauss-5x5-mi2", kind="tasks")
    x, y = task.sample(3000, seed=0)
    r = mie.estimate(x, y, seed=0, steps=100, eval_every=50)  # a barely trained critic
    s = r.settings
    assert s.chosen_critic == "copula" and s.monitor["copula"] > s.monitor["trained"] and s.read_out == "dv"
    assert isinstance(r.critic, EllipticalCopulaCritic) and s.copula["df"] >= 10 and s.copula["rank"] >= 3
    assert s.copula["model_mi"] == pytest.approx(task.mi, abs=0.15) and s.read_out_folds == 5
    assert s.train_value == pytest.approx(s.copula["model_mi"], abs=0.1)  # the folds' mean model MI
    assert r.mi == pytest.approx(task.mi, abs=0.2) and r.ci[0] < r.mi < r.ci[1]
    off = mie.estimate(x, y, seed=0, steps=100, eval_every=50, copula=False)
    assert off.settings.chosen_critic == "trained" and off.settings.copula is None
    assert off.mi < r.mi - 0.1  # what the copula candidate is for (a barely trained critic)


@pytest.mark.parametrize("task_id, dfs, ranks", [
    ("student-t-3x3-df2", (1.0, 2.0, 3.0), range(0, 4)),      # heavy tails, zero correlation
    ("gauss-2pair-25x25", (10.0, 30.0, math.inf), range(1, 5)),  # sparse: two coupled pairs of 25
])
def test_copula_candidate_finds_the_tails_and_the_rank(task_id, dfs, ranks):
    task = mie.get(task_id, kind="tasks")
    x, y = task.sample(5000, seed=2)
    r = mie.estimate(x, y, seed=0, steps=50, eval_every=50)
    c = r.settings.copula
    assert r.settings.chosen_critic == "copula" and c["df"] in dfs and c["rank"] in ranks, c
    assert abs(r.mi - task.mi) <= max(0.1, 0.1 * task.mi), (r.mi, task.mi)


def test_trained_critic_wins_where_no_copula_fits():
    """y = x² + noise: the dependence is not elliptical after the rank map."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 1))
    y = x ** 2 + 0.3 * rng.normal(size=(2000, 1))
    r = mie.estimate(x, y, seed=0, steps=600)
    chosen = r.settings.chosen_critic
    assert chosen in ("trained", "trained-separable") and r.mi > 0.5  # concat or separable (candidates/narrow.py)
    assert r.settings.monitor[chosen] > r.settings.monitor["copula"] + 0.3


def test_copula_candidate_needs_rows_and_a_named_critic(gauss):
    _, x, y = gauss
    module = mie.get("concat", kind="critics", x_dim=1, y_dim=1, hidden=8)
    given = mie.estimate(x, y, critic=module, steps=40, eval_every=20, batch_size=64)
    assert given.settings.chosen_critic == "trained" and given.settings.copula is None
    rng = np.random.default_rng(0)
    wide = mie.estimate(rng.normal(size=(100, 8)), rng.normal(size=(100, 8)), steps=20, eval_every=10,
                        critic_options={"hidden": 8})  # 70 training rows < 10 per column
    assert wide.settings.copula is None


def test_intervals_the_heldout_one_and_the_one_widened_to_the_training_value(gauss):
    _, x, y = gauss
    for copula in (True, False):
        r = mie.estimate(x, y, seed=0, copula=copula, **FAST)
        half = r.ci_heldout[1] - r.mi
        assert r.ci_heldout[0] == pytest.approx(r.mi - half) and half > 0
        assert r.ci[0] == r.ci_heldout[0]
        assert r.ci[1] == pytest.approx(max(r.mi, r.settings.train_value) + half)


def test_ensemble_averages_trained_critics_from_other_seeds(gauss):
    _, x, y = gauss
    one = mie.estimate(x, y, seed=0, copula=False, **FAST)
    three = mie.estimate(x, y, seed=0, copula=False, ensemble=3, **FAST)
    assert isinstance(three.critic, mie.critics.EnsembleCritic) and len(three.critic.members) == 3
    assert three.mi != one.mi and math.isfinite(three.mi)
    with pytest.raises(ValueError, match="ensemble"):
        mie.estimate(x, y, critic=mie.get("concat", kind="critics", x_dim=1, y_dim=1), ensemble=2)


@pytest.mark.parametrize("task_id", ["student-t-2x2-df5-rho0.5", "uniform-eps0.1", "asinh-student-t-2x2-df1"])
def test_gaussian_copula_mi_is_a_lower_bound_on_non_gaussian_tasks(task_id):
    """After normal scores, the Gaussian has the largest entropy for its covariance, so I_G <= I."""
    task = mie.get(task_id, kind="tasks")
    x, y = task.sample(40_000, seed=3)
    rows = np.arange(len(x))
    z = [marginal_transform(a, rows) for a in (x, y)]
    gaussian_mi = EllipticalCopulaCritic.fit(*z, df=math.inf).mutual_information()
    assert 0.0 <= gaussian_mi < task.mi - 0.03  # strictly below: these copulas are not Gaussian


@pytest.mark.parametrize("caller_flushes", [False, True])
def test_estimate_leaves_the_callers_threads_denormals_and_random_state_alone(gauss, caller_flushes):
    from mi_estimators.fit import flush_denormals, flushing_denormals

    _, x, y = gauss
    before_threads, before_flush = torch.get_num_threads(), flushing_denormals()
    torch.set_num_threads(2)
    if not torch.set_flush_denormal(caller_flushes):
        pytest.skip("this CPU cannot flush denormals")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    try:
        with flush_denormals():
            assert flushing_denormals() and torch.tensor([1e-40]).item() == 0.0
        assert flushing_denormals() == caller_flushes
        mie.estimate(x, y, seed=5, threads=1, **FAST)
        assert torch.get_num_threads() == 2 and flushing_denormals() == caller_flushes
        assert torch.equal(torch.get_rng_state(), state)
    finally:
        torch.set_num_threads(before_threads)
        torch.set_flush_denormal(before_flush)


def test_unknown_option_names_the_closest(gauss):
    _, x, y = gauss
    with pytest.raises(ValueError, match="did you mean 'steps'"):
        mie.estimate(x, y, step=10)


def test_crossfit_is_the_mean_over_folds_of_refit_and_read_out():
    """Against a naive loop: per fold, the transform and the copula fitted on the other rows, DV on the fold."""
    from mi_estimators.copula import EllipticalCopulaCritic
    from mi_estimators.estimation import CopulaCandidate, EstimateOptions, crossfit

    task = mie.get("student-t-2x2-df5-rho0.5", kind="tasks")
    x, y = task.sample(600, seed=0)
    dv = mie.get("dv")

    cand = CopulaCandidate(EllipticalCopulaCritic.fit(x, y, df=5.0, rank=2), monitor=0.0)  # refits with df 5, rank 2
    opts = EstimateOptions(folds=3, jackknife_groups=5).resolve(2, 2)
    mi, se, train = crossfit(cand, x, y, opts, np.random.default_rng(4), torch.device("cpu"))
    values, variances, trains = [], [], []
    for test in np.array_split(np.random.default_rng(4).permutation(600), 3):
        rows = np.setdiff1d(np.arange(600), test)
        xz, yz = marginal_transform(x, rows), marginal_transform(y, rows)
        critic = EllipticalCopulaCritic.fit(xz[rows], yz[rows], df=5.0, rank=2)
        v, e = held_out(critic, dv, torch.as_tensor(xz[test]).float(), torch.as_tensor(yz[test]).float(), 4096, 5)
        values.append(v), variances.append(e ** 2), trains.append(critic.mutual_information())
    assert mi == pytest.approx(np.mean(values), abs=1e-6) and train == pytest.approx(np.mean(trains), abs=1e-9)
    assert se == pytest.approx(math.sqrt(sum(variances)) / 3, rel=1e-6)


def test_fit_critic_keeps_the_better_of_the_moving_average_and_the_raw_weights():
    """ema=β averages θ̄_3 = β²θ_1 + β(1−β)θ_2 + (1−β)θ_3 (the first step starts the average), θ_k
    taken by hand from raw runs of k steps with the same start and the same batches; the kept
    weights are whichever of θ̄_3 and θ_3 reads higher on the monitor split."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = x + 0.5 * torch.randn(200, 2, generator=g)
    torch.manual_seed(0)
    start = SeparableCritic(2, 2, hidden=8, embed_dim=4, norm_feature=True, activation="silu")
    bound, monitor = mie.get("infonce"), (x[150:], y[150:])

    def run(steps, ema=None):
        critic = copy.deepcopy(start)
        fit = fit_critic(critic, bound, (x[:150], y[:150]), monitor,
                         FitConfig(steps=steps, batch=32, lr=1e-2, eval_every=steps, ema=ema),
                         rng=np.random.default_rng(1))
        return torch.nn.utils.parameters_to_vector(critic.parameters()).detach(), fit

    def on_monitor(weights):
        critic = copy.deepcopy(start).eval()
        torch.nn.utils.vector_to_parameters(weights, critic.parameters())
        return held_out(critic, bound, *monitor, 4096, groups=0)[0]

    beta = 0.6
    raw = [run(k)[0] for k in (1, 2, 3)]
    average = beta ** 2 * raw[0] + beta * (1 - beta) * raw[1] + (1 - beta) * raw[2]
    assert (raw[2] - average).abs().max() > 1e-3  # the average is not the last weights
    kept, fit = run(3, ema=beta)
    values = {"average": on_monitor(average), "raw": on_monitor(raw[2])}
    best = max(values, key=values.get)
    assert fit.averaged == (best == "average") and fit.history["averaged"] == [fit.averaged]
    assert fit.best_monitor == pytest.approx(values[best], abs=1e-5)
    torch.testing.assert_close(kept, average if fit.averaged else raw[2], rtol=1e-5, atol=1e-6)


def test_a_separable_trained_winner_is_cross_fitted_and_a_concat_one_is_not(monkeypatch):
    """y = x² + noise (not elliptical: the trained critic wins). Each fold's refit trains without a
    monitor for the kept step count scaled by its rows, keeping the average if the fit kept it."""
    from mi_estimators.estimation.candidates import trained as est

    calls = []

    def spy(critic, bound, train, monitor, config, **kw):
        out = fit_critic(critic, bound, train, monitor, config, **kw)
        calls.append(dict(rows=len(train[0]), monitored=monitor is not None, steps=config.steps, ema=config.ema,
                          best_step=out.best_step, averaged=out.averaged))
        return out

    def stacked_spy(critics, bound, train, steps, config, rng):  # the 5 refits, trained as one stacked critic
        calls.extend(dict(rows=len(rows[0]), monitored=False, steps=s, ema=config.ema) for rows, s in zip(train, steps))
        return fit_stacked(critics, bound, train, steps, config, rng)

    monkeypatch.setattr(est, "fit_critic", spy)
    monkeypatch.setattr(est, "fit_stacked", stacked_spy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 2))
    y = x ** 2 + 0.3 * rng.normal(size=(1500, 2))
    r = mie.estimate(x, y, seed=0, steps=300, eval_every=50, critic_options={"hidden": 16})
    assert r.settings.chosen_critic == "trained" and r.settings.read_out_folds == 5
    first, refits = calls[0], calls[1:]
    assert first["monitored"] and len(refits) == 5 and not any(c["monitored"] for c in refits)
    for c in refits:  # 4/5 of 1,500 rows against the 1,050 training rows of the monitored fit
        assert c["rows"] == 1200 and c["steps"] == min(300, round(first["best_step"] * 1200 / r.settings.n_train))
        assert c["ema"] == (0.99 if first["averaged"] else None)
    assert r.ci[0] < r.mi < r.ci[1] and r.mi > 0.5

    calls.clear()
    r1 = mie.estimate(x[:, :1], y[:, :1], critic="concat", seed=0, steps=100, eval_every=50,
                      critic_options={"hidden": 8})
    assert r1.settings.options.critic == "concat" and r1.settings.read_out_folds in (1, 5)
    assert r1.settings.read_out_folds == (5 if r1.settings.chosen_critic == "copula" else 1) and len(calls) == 1


def _two_coupled_pairs(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    y[:, :2] = 0.8 * x[:, :2] + 0.6 * y[:, :2]
    return x, y


def test_the_trained_critic_takes_the_copulas_canonical_variates_on_wide_low_rank_data(monkeypatch):
    """Both sides >= CANONICAL_MIN_DIM columns and a copula of rank 2: the trained critic takes the
    2 leading canonical variates plus each side's mean square; the projection's pairs have the
    leading canonical correlations of the training rows (a naive eigenproblem)."""
    from mi_estimators.estimation.candidates import trained as est

    built = []
    make = est.canonical_critic
    monkeypatch.setattr(est, "canonical_critic", lambda opts, x, y, rank: built.append(
        (make(opts, x, y, rank), x.numpy().copy(), y.numpy().copy())) or built[-1][0])
    x, y = _two_coupled_pairs(1500, 12)
    r = mie.estimate(x, y, seed=0, **FAST)
    k = r.settings.copula["rank"]  # 2 coupled pairs; at most a quarter of 12
    assert 2 <= k <= 3 and set(r.settings.monitor) == {f"trained-canonical-{k}", "copula"}
    critic, xt, yt = built[0]
    assert isinstance(critic, mie.critics.ProjectedCritic) and critic.px.shape == (k, 12) == critic.py.shape
    assert critic.critic.in_dims == (k + 1, k + 1)  # k variates + the mean square, no second norm feature
    a, b = xt @ critic.px.double().numpy().T, yt @ critic.py.double().numpy().T
    s = np.cov(np.hstack([xt, yt]).T)
    sxx, sxy, syy = s[:12, :12], s[:12, 12:], s[12:, 12:]
    top = np.sort(np.linalg.eigvals(np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)).real)[::-1]
    assert np.corrcoef(a[:, 0], b[:, 0])[0, 1] == pytest.approx(math.sqrt(top[0]), abs=1e-4)
    assert np.corrcoef(a[:, 1], b[:, 1])[0, 1] == pytest.approx(math.sqrt(top[1]), abs=1e-4)
    assert abs(np.corrcoef(a.T)[0, 1]) < 1e-4 and np.var(a, axis=0) == pytest.approx([1] * k, abs=2e-3)


@pytest.mark.parametrize("width, options", [(9, {}), (10, {"canonical": False}), (10, {"copula": False}),
                                            (10, {"critic": "module"}), (10, {"dense": True})])
def test_all_columns_for_narrow_or_dense_data_when_off_or_for_a_module(width, options):
    """Narrow data, canonical=False, no copula, a critic given as a module, or a copula keeping more
    than a quarter of the pairs (here all 10: every pair coupled): the critic takes every column."""
    x, y = _two_coupled_pairs(1000, width)
    if options.pop("dense", False):
        y = 0.8 * x + 0.6 * y
    if options.get("critic") == "module":
        options = {"critic": SeparableCritic(width, width, hidden=8)}
    fast = dict(FAST, critic_options={}) if "critic" in options else FAST
    r = mie.estimate(x, y, seed=0, **fast, **options)
    assert "trained" in r.settings.monitor and not any(k.startswith("trained-canonical") for k in r.settings.monitor)


def test_a_canonical_winner_is_cross_fitted_with_directions_refitted_on_each_fold(monkeypatch):
    import mi_estimators.estimation as est
    from mi_estimators.estimation.candidates import trained

    rows = []
    make = trained.canonical_critic
    monkeypatch.setattr(trained, "canonical_critic", lambda opts, x, y, rank: rows.append((rank, len(x))) or
                        make(opts, x, y, rank))
    monkeypatch.setattr(est, "choose", lambda cands: cands[0])
    x, y = _two_coupled_pairs(1500, 12)
    r = mie.estimate(x, y, seed=0, **FAST)
    k = r.settings.copula["rank"]
    assert r.settings.chosen_critic == f"trained-canonical-{k}" and r.settings.read_out_folds == 5
    assert rows == [(k, 1050)] + [(k, 1200)] * 5 and isinstance(r.critic, mie.critics.ProjectedCritic)
    assert r.ci[0] < r.mi < r.ci[1] and f"trained-canonical-{k} separable critic" in str(r)


def test_projected_critic_rejects_bad_projections_and_inputs():
    inner = SeparableCritic(3, 3, hidden=4, embed_dim=2)
    with pytest.raises(ValueError, match="px must be a 2-D floating-point"):
        mie.critics.ProjectedCritic(inner, torch.ones(2), torch.ones(2, 4))
    critic = mie.critics.ProjectedCritic(inner, torch.ones(2, 5), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"y must have shape \(N, 4\)"):
        critic(torch.ones(3, 5), torch.ones(3, 5))


def test_cli_no_canonical(tmp_path, capsys):
    import json

    x, y = _two_coupled_pairs(1500, 12)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    base = ["estimate", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--steps", "20", "--json"]
    for extra, canonical in (([], True), (["--no-canonical"], False)):
        assert cli.main(base + extra) == 0
        settings = json.loads(capsys.readouterr().out)["settings"]
        name = f"trained-canonical-{settings['copula']['rank']}" if canonical else "trained"
        assert settings["options"]["canonical"] is canonical and name in settings["monitor"]


def test_an_ensemble_of_a_canonical_winner_reduces_every_member(monkeypatch):
    import mi_estimators.estimation as est

    monkeypatch.setattr(est, "choose", lambda cands: cands[0])
    x, y = _two_coupled_pairs(1500, 12)
    r = mie.estimate(x, y, seed=0, ensemble=2, **FAST)
    k = r.settings.copula["rank"]
    assert isinstance(r.critic, mie.critics.EnsembleCritic) and r.settings.read_out_folds == 1
    assert [m.px.shape for m in r.critic.members] == [(k, 12)] * 2
    assert not torch.equal(*(m.critic.g[0].weight for m in r.critic.members))  # other seeds


def test_the_printed_result_says_where_it_was_read_out(gauss):
    _, x, y = gauss
    crossfitted = mie.estimate(x, y, seed=0, **FAST)
    assert crossfitted.settings.read_out_folds == 5 and str(crossfitted).endswith("cross-fitted over 5 folds of n=1500")
    single = mie.estimate(x, y, seed=0, folds=1, **FAST)
    assert str(single).endswith(f"n_train={single.settings.n_train} n_test={single.settings.n_test}")
