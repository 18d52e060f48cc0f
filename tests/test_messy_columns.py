"""estimate() on messy real-data columns: constant, duplicated, collinear, discrete, tied, heavy-tailed,
tiny or huge, of any real dtype and container (mi_estimators.columns, arrays.as_array)."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mi_estimators as mie
from mi_estimators.arrays import as_array, marginal_transform
from mi_estimators.columns import ConstantColumnsWarning, DeterminedColumnsWarning, canonical_correlations, screen
from mi_estimators.estimation import EstimateOptions, intervals
from mi_estimators.copula import EIGEN_FLOOR, Canonical, EllipticalCopulaCritic, fit_dispersion

FAST = dict(steps=50, threads=1, seed=0, folds=1)


def _gauss(n=300, rho=0.8, seed=0):
    """x: two columns, the first correlated with y's one column (I = -½ log(1 - rho²))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rho * x[:, :1] + math.sqrt(1 - rho ** 2) * rng.normal(size=(n, 1))
    return x, y


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- screen(): constant and determined columns
def test_constant_columns_are_dropped_with_a_warning_and_listed():
    x, y = _gauss()
    x = np.c_[x[:, 0], np.full(len(x), 7.0), x[:, 1]]
    y = np.c_[np.zeros(len(y)), y]
    with pytest.warns(ConstantColumnsWarning, match=r"x\[1\].*y\[0\]"):
        xs, ys, report = screen(x, y)
    assert report.dropped == {"x": [1], "y": [0]} and report.mi is None
    np.testing.assert_array_equal(xs, x[:, [0, 2]])
    np.testing.assert_array_equal(ys, y[:, [1]])


def test_a_side_with_no_columns_left_has_mi_zero_exactly():
    x, y = _gauss()
    with pytest.warns(ConstantColumnsWarning) as record:
        r = mie.estimate(x, np.ones((len(y), 3)), **FAST)
    assert any("I(X; Y) = 0 exactly" in str(w.message) for w in record)
    assert (r.mi, r.stderr, r.ci, r.ci_heldout) == (0.0, 0.0, (0.0, 0.0), (0.0, 0.0))
    assert r.settings.dropped_columns == {"x": [], "y": [0, 1, 2]} and "no columns left" in r.settings.degenerate
    assert "exactly" in str(r)


@pytest.mark.parametrize("make, words", [
    (lambda x, y: np.c_[x, y[:, 0]], r"y\[0\] is a copy of x\[2\]"),
    (lambda x, y: np.c_[np.exp(-3 * y[:, 0]), x], r"y\[0\] is a strictly decreasing map of x\[0\]"),
    (lambda x, y: np.c_[x, 2 * y[:, 0] - x[:, 1]], r"linear combination"),
])
def test_a_side_that_determines_a_continuous_column_gives_inf(make, words):
    x, y = _gauss()
    with pytest.warns(DeterminedColumnsWarning, match=words):
        r = mie.estimate(make(x, y), y, **FAST)
    assert r.mi == math.inf and r.stderr == 0.0 and r.ci == (math.inf, math.inf) and r.critic is None
    assert r.settings.degenerate and "inf" in r.settings.degenerate


def test_canonical_correlations_match_numpy_on_two_columns_and_are_one_on_a_linear_relation():
    x, y = _gauss(n=500)
    rho = canonical_correlations(x[:, :1], y)[0]
    assert rho[0] == pytest.approx(abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]), abs=1e-12)
    rho = canonical_correlations(x, np.c_[y, x @ [0.3, -2.0]])[0]
    assert rho[0] == pytest.approx(1.0, abs=1e-12) and rho[1] < 0.99


def test_a_discrete_shared_column_has_finite_mi_and_is_estimated():
    x, y = _gauss(n=600)
    label = (y[:, 0] > 0).astype(float)
    with pytest.warns(DeterminedColumnsWarning, match="finite"):
        r = mie.estimate(np.c_[x, label], np.c_[y, label], **FAST)
    # I(X, L; Y, L) >= H(L) = log 2 for a fair binary label; the read-out is a lower bound of it
    assert math.isfinite(r.mi) and r.mi > 0.5 * math.log(2) and r.settings.degenerate is None


def test_more_columns_than_rows_can_fit_a_linear_relation_so_it_is_not_reported():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 40)), rng.normal(size=(60, 30))
    assert _quiet(screen, x, y)[2].determined == ()


# ---------------------------------------------------------------- the copula fit on singular correlation
def test_fit_dispersion_floors_duplicated_and_zero_columns():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 3))
    z = np.c_[z, z[:, 0], np.zeros(500), z[:, 1] + 1e-9 * rng.normal(size=500)]   # dup, dead, near-dup
    for df in (2.0, math.inf):
        r = fit_dispersion(z, df)
        assert np.isfinite(r).all() and np.allclose(np.diag(r), 1.0)
        assert np.linalg.eigvalsh(r)[0] > 0.5 * EIGEN_FLOOR
        assert r[4, 4] == 1.0 and np.abs(r[4, :4]).max() < 1e-12   # the zero column: independent of the rest
        critic = EllipticalCopulaCritic(Canonical.of(r, 3), df, 3)
        assert math.isfinite(critic.mutual_information())
        assert torch.isfinite(critic(torch.as_tensor(z[:20, :3]), torch.as_tensor(z[:20, 3:]))).all()


def test_fit_dispersion_leaves_a_well_conditioned_matrix_bit_for_bit():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(400, 4)) @ rng.normal(size=(4, 4))
    s = z.T @ z / len(z)
    np.testing.assert_array_equal(fit_dispersion(z, math.inf), s / np.sqrt(np.outer(np.diag(s), np.diag(s))))


def test_nearly_collinear_columns_are_estimated_without_linalg_errors():
    x, y = _gauss(n=500)
    noisy = y[:, 0] + 1e-3 * np.random.default_rng(2).normal(size=len(y))
    r = mie.estimate(np.c_[x, noisy, noisy + 1e-12 * x[:, 0]], y, **FAST)
    # I(noisy; y) ≈ log(1/1e-3) = 6.9 nats; x alone has 0.51 (a DV read-out on 100 rows is far below 6.9)
    assert math.isfinite(r.mi) and r.mi > 1.0 and r.ci[1] > 5.0


# ---------------------------------------------------------------- columns constant on the training rows only
@pytest.mark.parametrize("mode", ["rank", "zscore"])
def test_a_column_constant_on_the_training_rows_becomes_zero_everywhere(mode):
    a = np.c_[np.r_[np.zeros(90), np.arange(1.0, 11.0)], np.arange(100.0)]
    z = marginal_transform(a, np.arange(90), mode)
    assert not z[:, 0].any() and z[:, 1].std() > 0.5


# ---------------------------------------------------------------- inputs of any reasonable kind
@pytest.mark.parametrize("cast", [
    lambda a: a.astype(np.float16), lambda a: a.astype(np.float32), lambda a: np.round(a * 10).astype(np.int64),
    lambda a: a > 0, lambda a: torch.as_tensor(a, dtype=torch.bfloat16), lambda a: torch.as_tensor(a > 0),
    lambda a: a.tolist(),
])
def test_as_array_takes_every_real_dtype_and_container(cast):
    a = np.random.default_rng(0).normal(size=(50, 2))
    out = as_array(cast(a), "x")
    assert out.dtype == np.float64 and out.shape == (50, 2)
    np.testing.assert_allclose(out, np.asarray(cast(a).float() if isinstance(cast(a), torch.Tensor) else cast(a),
                                               dtype=np.float64))


def test_as_array_takes_pandas_and_names_its_text_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, 0, 1], "c": [True, False, True]})
    np.testing.assert_array_equal(as_array(frame, "x"), frame.to_numpy(dtype=float))
    np.testing.assert_array_equal(as_array(frame["a"], "x"), [[1.0], [2.0], [3.0]])
    with pytest.raises(ValueError, match=r"non-numeric columns \['name'\]"):
        as_array(frame.assign(name=["u", "v", "w"]), "x")
    with pytest.raises(ValueError, match="NaN"):
        as_array(frame[["a", "b"]].astype({"b": "Int64"}).where(frame["a"] < 3), "x")


@pytest.mark.parametrize("bad, words", [
    (np.array([1.0, "a", None], dtype=object), "Python objects"),
    (np.array([1.0, 2.0], dtype=object), "Python objects"),
    (np.array([1 + 2j, 3j]), "complex"),
    (torch.tensor([1 + 2j]), "complex"),
    ([[1.0, 2.0], [3.0]], "rectangular"),
])
def test_as_array_refuses_non_numeric_data_with_a_fix(bad, words):
    with pytest.raises(ValueError, match=words):
        as_array(bad, "x")


def test_tiny_and_huge_scales_give_the_unscaled_estimate():
    x, y = _gauss()
    assert mie.estimate(x * 1e-30, y * 1e30, **FAST).mi == mie.estimate(x, y, **FAST).mi   # ranks see no scale
    z = mie.estimate(x * 1e30, y * 1e-30, standardize="zscore", **FAST)
    assert z.mi == pytest.approx(mie.estimate(x, y, standardize="zscore", **FAST).mi, abs=1e-4)


# ---------------------------------------------------------------- honest intervals (issue #20, item 6)
def test_certified_lower_bounds_raise_only_the_upper_end():
    opts = EstimateOptions()
    plain = intervals(0.2, 0.05, 0.25, opts)
    assert intervals(0.2, 0.05, 0.25, opts, certified=[0.2, math.nan, -math.inf]) == plain
    ci, heldout = intervals(0.2, 0.05, 0.25, opts, certified=[0.9])
    assert ci == (plain[0][0], 0.9) and heldout == plain[1]


def test_a_trained_winner_interval_reaches_the_copulas_heldout_lower_bound(monkeypatch):
    import mi_estimators.estimation as est

    # force the (barely trained) critic to win: its interval alone would end far below the
    # copula's DV on the same test rows
    monkeypatch.setattr(est, "choose", lambda candidates: candidates[0])
    x, y = _gauss(n=800, rho=0.9)
    r = mie.estimate(x, y, steps=2, eval_every=1, folds=1, threads=1, seed=0)
    lower = r.settings.heldout_lower_bound
    assert r.settings.chosen_critic == "trained" and lower > r.ci_heldout[1] + 0.3
    assert r.ci[1] >= lower and r.ci[0] == r.ci_heldout[0]


# ---------------------------------------------------------------- property: any column kind, no traceback
KINDS = ["constant", "duplicate", "discrete", "tied", "heavy", "tiny", "huge"]
CASTS = {"float64": lambda a: a, "float32": lambda a: a.astype(np.float32), "float16": lambda a: a.astype(np.float16),
         "int": lambda a: np.round(a * 4).astype(np.int32), "bool": lambda a: a > 0,
         "torch": lambda a: torch.as_tensor(a), "list": lambda a: a.tolist(), "pandas": None}


def _column(kind: str, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(y)
    return {"constant": np.full(n, 3.5), "duplicate": y[:, 0], "discrete": rng.integers(0, 3, n).astype(float),
            "tied": np.where(rng.random(n) < 0.9, 0.0, rng.normal(size=n)), "heavy": rng.standard_cauchy(n),
            "tiny": 1e-30 * rng.normal(size=n), "huge": 1e30 * rng.normal(size=n)}[kind]


def _cast(name: str, a: np.ndarray):
    if name == "pandas":
        pd = pytest.importorskip("pandas")
        return pd.DataFrame(a, columns=[f"c{j}" for j in range(a.shape[1])])
    return CASTS[name](a)


@settings(max_examples=8, deadline=None)
@given(kind=st.sampled_from(KINDS), cast=st.sampled_from(sorted(CASTS)), seed=st.integers(0, 2 ** 16))
def test_estimate_never_fails_on_a_messy_column(kind, cast, seed):
    rng = np.random.default_rng(seed)
    x, y = _gauss(n=300, seed=seed)
    messy = np.c_[x, _column(kind, y, rng)]
    if kind == "huge" and cast == "float16":  # 1e30 overflows float16 (max 65504): the column is ±inf
        with pytest.raises(ValueError, match="infinite entries.*drop or impute"):
            _quiet(mie.estimate, _cast(cast, messy), y, **FAST)
        return
    r = _quiet(mie.estimate, _cast(cast, messy), y, **FAST)
    assert not math.isnan(r.mi) and r.ci[0] <= r.mi <= r.ci[1]
    if kind == "duplicate" and cast in ("float64", "float32", "torch", "list", "pandas"):
        assert r.mi == math.inf and r.settings.degenerate   # y's column survives the cast strictly ordered
    if kind == "constant":
        assert r.settings.dropped_columns["x"] == [2]
        base = _quiet(mie.estimate, _cast(cast, x), y, **FAST)
        assert abs(r.mi - base.mi) <= max(base.stderr, 1e-12)


# ---------------------------------------------------------------- ties: mid-rank normal scores lose no information
def test_rank_scores_of_a_column_of_90_percent_zeros_keep_every_distinct_value_apart():
    """The mid-rank normal scores are strictly increasing on the training values, however tied: the
    zeros share one score and every other value keeps its own, so I(X; Y) is unchanged (the
    measurement on a zero-inflated Gaussian with known MI is in the columns module docstring)."""
    rng = np.random.default_rng(0)
    a = np.where(rng.random((1000, 1)) < 0.9, 0.0, rng.normal(size=(1000, 1)))
    train = np.arange(700)
    z = marginal_transform(a, train)
    values, first = np.unique(a[train, 0], return_index=True)
    assert np.all(np.diff(z[train][first, 0]) > 0) and len(np.unique(z[train, 0])) == len(values)
    assert len(np.unique(z[a[:, 0] == 0, 0])) == 1   # held-out zeros get the training zeros' score
