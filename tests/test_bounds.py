"""Every bound against a naive reference, closed-form optimal critics, and exact inequalities.

What every bound must satisfy (ValueErrors for bad scores, finite values and gradients at ±1e4,
permutation invariance, ceilings, the optimal-critic inequality) is checked for every registered
bound by the conformance kit in ``test_conformance.py``; this file checks each bound's own maths.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mi_estimators as mie
import reference as ref
from mi_estimators.bounds.base import PAIRS_AND_LOCATIONS
from mi_estimators.tasks import GaussianTask
from mi_estimators.testing.strategies import gaussian_covariances, optimal_scores
from mi_estimators.testing.strategies import score_tensors as kit_score_tensors

BOUNDS = mie.available()

#: built-in bound -> (options, naive reference of its value)
REFERENCES = {
    "dv": ({}, ref.dv),
    "mine": ({}, ref.dv),
    "nwj": ({}, ref.nwj),
    "tuba": ({}, lambda s: ref.tuba(s, [0.0] * s.shape[0])),
    "jsd": ({}, ref.jsd_readout),
    "infonce": ({}, ref.infonce),
    "smile": ({"clip": 1.0}, lambda s: ref.smile(s, 1.0)),
    "interpolated": ({"alpha": 0.3}, lambda s: ref.interpolated(s, 0.3)),
    "mixture_nce": ({"tau": 2.0}, lambda s: ref.mixture_nce(s.unsqueeze(-1) if s.dim() == 3 else s[..., None, None],
                                                             2.0, 0.5)[0]),
}


def score_tensors(locations=True, max_n=6):
    """Moderate float64 scores (the naive references exponentiate them): (N, N) or (N, N, L)."""
    shapes = PAIRS_AND_LOCATIONS if locations else (mie.ScoreShape.PAIRS,)
    return kit_score_tensors(shapes, max_n=max_n, dtypes=(torch.float64,), max_abs=5.0, extreme=None)


# ------------------------------------------------------------------ against the naive references


@pytest.mark.parametrize("name", sorted(REFERENCES))
@given(data=st.data())
def test_bound_matches_naive_reference(name, data):
    options, reference = REFERENCES[name]
    bound = mie.get(name, **options)
    scores = data.draw(score_tensors(locations=mie.ScoreShape.LOCATIONS in bound.info.score_shapes))
    torch.testing.assert_close(bound(scores), reference(scores), rtol=1e-9, atol=1e-9)


@given(scores=score_tensors(locations=False))
def test_tuba_per_row_baseline_matches_reference(scores):
    baseline = torch.linspace(-1.0, 2.0, scores.shape[0], dtype=scores.dtype)
    tuba = mie.get("tuba")
    torch.testing.assert_close(tuba(scores, log_baseline=baseline), ref.tuba(scores, baseline))
    torch.testing.assert_close(tuba(scores, log_baseline=1.0), mie.get("nwj")(scores))
    torch.testing.assert_close(mie.get("tuba", log_baseline=1.0)(scores), mie.get("nwj")(scores))


@given(scores=score_tensors(), clip=st.one_of(st.none(), st.floats(0.5, 10.0)))
def test_smile_value_is_clipped_dv_and_gradient_is_jsd(scores, clip):
    scores.requires_grad_()
    smile = mie.get("smile", clip=clip)
    value = smile(scores)
    torch.testing.assert_close(value, ref.smile(scores, clip))
    (grad,) = torch.autograd.grad(value, scores)
    (jsd_grad,) = torch.autograd.grad(ref.jsd_objective(scores), scores)
    torch.testing.assert_close(grad, jsd_grad)


@given(scores=score_tensors())
def test_jsd_loss_is_jsd_objective_and_value_has_its_gradient(scores):
    scores.requires_grad_()
    jsd = mie.get("jsd")
    torch.testing.assert_close(jsd.loss(scores), -ref.jsd_objective(scores))
    (grad_value,) = torch.autograd.grad(jsd(scores), scores)
    (grad_loss,) = torch.autograd.grad(jsd.loss(scores), scores)
    torch.testing.assert_close(grad_value, -grad_loss)


@given(scores=score_tensors(locations=False), alpha=st.floats(0.0, 1.0))
def test_interpolated_ends_and_reference(scores, alpha):
    torch.testing.assert_close(mie.get("interpolated", alpha=alpha)(scores), ref.interpolated(scores, alpha))
    torch.testing.assert_close(mie.get("interpolated", alpha=0.0)(scores), mie.get("nwj")(scores))


def test_interpolated_alpha_one_is_leave_one_out_infonce():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(5, 5, generator=g, dtype=torch.float64)
    expected = []
    for i in range(5):
        for left_out in range(5):
            if left_out != i:
                keep = [k for k in range(5) if k != left_out]     # the positive and 3 negatives
                expected.append(scores[i, i] - (torch.logsumexp(scores[i, keep], 0) - math.log(4)))
    torch.testing.assert_close(mie.get("interpolated", alpha=1.0)(scores), torch.stack(expected).mean())


@given(scores=score_tensors(), tau=st.floats(0.1, 5.0), alpha=st.floats(0.0, 2.0), k=st.integers(1, 3),
       clip=st.one_of(st.none(), st.just(2.0)))
def test_mixture_nce_matches_reference(scores, tau, alpha, k, clip):
    s3 = scores if scores.dim() == 3 else scores.unsqueeze(-1)
    g = torch.Generator().manual_seed(k)
    s4 = torch.stack([s3] + [s3 + torch.randn(s3.shape, generator=g, dtype=s3.dtype) for _ in range(k - 1)], -1)
    bound = mie.get("mixture_nce", tau=tau, alpha=alpha, clip=clip)
    value, objective = ref.mixture_nce(s4, tau, alpha, clip)
    torch.testing.assert_close(bound(s4), value)
    torch.testing.assert_close(bound.loss(s4), -objective)


# ------------------------------------------------------------------ exact properties


@given(scores=score_tensors(), penalty=st.sampled_from([0.0, 0.04]), clip=st.one_of(st.none(), st.just(3.0)))
def test_mixture_with_one_component_equals_infonce_exactly(scores, penalty, clip):
    mixture = mie.get("mixture_nce", tau=0.7, penalty=penalty, clip=clip)
    infonce = mie.get("infonce", penalty=penalty, clip=clip)
    assert torch.equal(mixture(scores), infonce(scores))
    assert torch.equal(mixture.loss(scores), infonce.loss(scores))
    s4 = scores.unsqueeze(-1) if scores.dim() == 3 else scores[..., None, None]
    assert torch.equal(mixture(s4), infonce(scores))


@given(scores=score_tensors(), k=st.integers(2, 4))
def test_mixture_of_identical_components_has_uniform_q(scores, k):
    s4 = (scores.unsqueeze(-1) if scores.dim() == 3 else scores[..., None, None]).expand(*scores.shape[:2], -1, k)
    mixture = mie.get("mixture_nce", tau=1.0, alpha=0.5)
    torch.testing.assert_close(mixture(s4), mie.get("infonce")(scores))
    torch.testing.assert_close(mixture.loss(s4), -mie.get("infonce")(scores) - 0.5 * math.log(k))


@given(scores=score_tensors())
def test_infonce_reaches_its_ceiling_at_separable_scores(scores):
    # the kit checks value <= log K for every bound declaring max_value; here: the ceiling is tight
    n = scores.shape[0]
    k = n if scores.dim() == 2 else 1 + (n - 1) * scores.shape[2]
    strong = scores + 50.0 * torch.eye(n, dtype=scores.dtype).reshape(n, n, *([1] * (scores.dim() - 2)))
    assert float(mie.get("infonce")(strong)) > math.log(k) - 1e-6
    assert mie.get("infonce").info.max_value(None, tuple(scores.shape)) == pytest.approx(math.log(k))


@given(scores=score_tensors())
def test_dv_is_at_least_nwj(scores):
    # log m <= m / e for every m > 0, so DV >= NWJ on the same scores
    assert float(mie.get("dv")(scores)) >= float(mie.get("nwj")(scores)) - 1e-12


@given(scores=score_tensors(), tau=st.floats(0.1, 20.0))
def test_smile_equals_dv_when_no_score_is_clipped(scores, tau):
    if float(scores.abs().max()) <= tau:
        torch.testing.assert_close(mie.get("smile", clip=tau)(scores), mie.get("dv")(scores))
    else:  # clipping only raises small and lowers large negatives: compare with the reference
        torch.testing.assert_close(mie.get("smile", clip=tau)(scores), ref.smile(scores, tau))
    torch.testing.assert_close(mie.get("smile", clip=None)(scores), mie.get("dv")(scores))


@given(scores=score_tensors(), shift=st.floats(-30.0, 30.0))
def test_infonce_and_dv_invariant_to_constant_shift(scores, shift):
    for name in ("infonce", "dv", "mine"):
        torch.testing.assert_close(mie.get(name)(scores + shift), mie.get(name)(scores))


@given(scores=score_tensors(), seed=st.integers(0, 100))
def test_infonce_invariant_to_per_row_constant(scores, seed):
    n = scores.shape[0]
    row_shift = 20 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=scores.dtype)
    shifted = scores + row_shift.reshape(n, *([1] * (scores.dim() - 1)))
    torch.testing.assert_close(mie.get("infonce")(shifted), mie.get("infonce")(scores))


def test_infonce_penalty_only_in_loss_and_clip_in_both():
    g = torch.Generator().manual_seed(1)
    scores = 5 * torch.randn(6, 6, 4, generator=g, dtype=torch.float64)
    plain, penalised = mie.get("infonce"), mie.get("infonce", penalty=0.04)
    torch.testing.assert_close(penalised(scores), plain(scores))
    torch.testing.assert_close(penalised.loss(scores), -plain(scores) + 0.04 * scores.square().mean())
    clipped = mie.get("infonce", clip=2.0)
    torch.testing.assert_close(clipped(scores), ref.infonce(2.0 * torch.tanh(scores / 2.0)))


# ------------------------------------------------------------------ MINE's moving average


def test_mine_moving_average_and_bias_corrected_gradient():
    g = torch.Generator().manual_seed(2)
    first = torch.randn(5, 5, generator=g, dtype=torch.float64)
    second = (2 * torch.randn(5, 5, generator=g, dtype=torch.float64)).requires_grad_()
    mine, dv = mie.get("mine", ema_rate=0.1), mie.get("dv")
    assert torch.isnan(mine.log_ema)
    mine(first)                                                   # the value does not touch the state
    assert torch.isnan(mine.log_ema)
    mine.loss(first)
    mean_exp = lambda s: torch.exp(s.detach()[~torch.eye(5, dtype=torch.bool)]).mean()  # noqa: E731
    torch.testing.assert_close(mine.log_ema.double(), torch.log(mean_exp(first)), check_dtype=False)
    loss = mine.loss(second)
    ema = 0.9 * mean_exp(first) + 0.1 * mean_exp(second)
    torch.testing.assert_close(mine.log_ema.double(), torch.log(ema), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss, -dv(second))                # same value as DV ...
    (grad,) = torch.autograd.grad(loss, second)
    (dv_grad,) = torch.autograd.grad(-dv(second), second)
    off = ~torch.eye(5, dtype=torch.bool)
    ratio = mean_exp(second) / ema                                # ... gradient: E_B[e^T] / EMA times DV's
    torch.testing.assert_close(grad[off], ratio * dv_grad[off], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(grad.diagonal(), dv_grad.diagonal())
    assert not torch.allclose(grad, dv_grad)
    assert "log_ema" in mine.state_dict()
    mine.reset()
    assert torch.isnan(mine.log_ema)


# ------------------------------------------------------------------ metadata and options


@pytest.mark.parametrize("name", BOUNDS)
def test_metadata(name):
    bound = mie.get(name)
    info = bound.info
    assert info.name == name and info.kind in ("lower", "upper", "neither")
    assert (info.ceiling is None) == (info.max_value is None)      # a ceiling in words is also checkable
    assert "arXiv:" in info.reference and bound.__doc__ and ">>>" in bound.__doc__


@pytest.mark.parametrize("name,options,message", [
    ("mine", {"ema_rate": 0.0}, "ema_rate"),
    ("mine", {"ema_rate": 1.5}, "ema_rate"),
    ("smile", {"clip": -1.0}, "clip"),
    ("infonce", {"penalty": -0.1}, "penalty"),
    ("infonce", {"clip": 0.0}, "clip"),
    ("interpolated", {"alpha": 1.2}, "alpha"),
    ("interpolated", {"log_baseline": float("nan")}, "log_baseline"),
    ("mixture_nce", {"tau": 0.0}, "tau"),
    ("mixture_nce", {"alpha": -1.0}, "alpha"),
    ("tuba", {"log_baseline": "a"}, "log_baseline"),
])
def test_bad_options_raise_value_error(name, options, message):
    with pytest.raises(ValueError, match=message):
        mie.get(name, **options)


def test_tuba_rejects_misshaped_baseline():
    with pytest.raises(ValueError, match="log_baseline"):
        mie.get("tuba")(torch.randn(4, 4), log_baseline=torch.zeros(3))


# ------------------------------------------------------------------ the analytic optimal critic


@given(spec=gaussian_covariances(st.floats(0.0, 1.5), max_dim=3), n=st.integers(64, 160),
       seed=st.integers(0, 2**32 - 1))
def test_nwj_is_unbiased_at_its_optimum_and_jsd_reads_it_out(spec, n, seed):
    cov, x_dim, mi = spec
    task = GaussianTask(cov, x_dim)
    t_star = optimal_scores(task, *task.sample(n, seed=seed))          # log p(x_i, y_j) / p(x_i) p(y_j)
    off = ~torch.eye(n, dtype=torch.bool)
    # NWJ at its optimum 1 + T* is unbiased (the kit checks only that it is not above the truth):
    # compare with the batch's own standard error, both ways
    nwj = float(mie.get("nwj")(1 + t_star))
    stderr = math.sqrt(t_star.diagonal().var() / n + torch.exp(t_star[off]).var() / n)
    assert abs(nwj - mi) <= 5 * stderr + 1e-3, (nwj, mi, stderr)
    # JSD's optimum is T* itself; the shifted read-out NWJ(T* + 1) is the same unbiased number
    assert math.isclose(float(mie.get("jsd")(t_star)), nwj, rel_tol=1e-12, abs_tol=1e-12)


def test_finite_checks_can_be_turned_off_for_a_block_and_come_back():
    from mi_estimators.bounds import finite_checks

    bad = torch.full((4, 4), float("nan"))
    with finite_checks(False):
        assert torch.isnan(mie.get("dv")(bad))  # no host read of the scores: NaN flows through
        with pytest.raises(ValueError, match="shape"):
            mie.get("dv")(torch.zeros(3, 4))  # shapes are still checked
    with pytest.raises(ValueError, match="NaN"):
        mie.get("dv")(bad)


def test_finite_check_switch_is_public_per_thread_and_shared_by_the_old_and_new_homes():
    """``finite_checks_enabled()`` reads the switch that ``finite_checks`` sets, the names imported from
    ``bounds.base`` are the ground floor's own objects, and another thread keeps its own setting."""
    import threading

    from mi_estimators import scores
    from mi_estimators.bounds import base

    assert base.finite_checks is scores.finite_checks and base.check_scores is scores.check_scores
    seen = []
    with scores.finite_checks(False):
        assert not scores.finite_checks_enabled()
        thread = threading.Thread(target=lambda: seen.append(scores.finite_checks_enabled()))
        thread.start()
        thread.join()
        with scores.finite_checks(True):
            assert scores.finite_checks_enabled()
        assert not scores.finite_checks_enabled()
    assert scores.finite_checks_enabled() and seen == [True]
