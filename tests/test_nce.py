"""The memory-efficient NCE kernel against a naive full-softmax reference."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from mi_estimators.nce import nce_candidates, nce_log_probs, nce_loss, nce_loss_features


@st.composite
def nce_problems(draw):
    na = draw(st.integers(1, 4))
    nb = na + draw(st.integers(0, 3))
    nb = max(nb, 2)
    return dict(
        na=na, nb=nb, nc=draw(st.integers(1, 3)), d=draw(st.integers(1, 5)),
        pos_offset=draw(st.integers(0, nb - na)),
        clip=draw(st.one_of(st.none(), st.floats(0.5, 20.0))),
        penalty=draw(st.sampled_from([0.0, 0.04, 1.0])),
        chunk_size=draw(st.one_of(st.none(), st.integers(1, 4))),
        scale=draw(st.sampled_from([0.1, 1.0, 10.0])),
        seed=draw(st.integers(0, 2**16)),
    )


def _scores(p, **kw):
    g = torch.Generator().manual_seed(p["seed"])
    return (p["scale"] * torch.randn(p["na"], p["nb"], p["nc"], generator=g, dtype=torch.float64)).requires_grad_()


def _features(p):
    g = torch.Generator().manual_seed(p["seed"])
    a = torch.randn(p["na"], p["d"], generator=g, dtype=torch.float64) * math.sqrt(p["scale"])
    b = torch.randn(p["nb"], p["nc"], p["d"], generator=g, dtype=torch.float64) * math.sqrt(p["scale"])
    return a.requires_grad_(), b.requires_grad_()


def _opts(p):
    return {k: p[k] for k in ("pos_offset", "penalty", "clip", "chunk_size")}


@given(nce_problems())
def test_nce_loss_matches_full_softmax_reference(p):
    scores = _scores(p)
    loss = nce_loss(scores, **_opts(p))
    expected = ref.nce_loss(scores, p["pos_offset"], p["penalty"], p["clip"])
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    (grad,) = torch.autograd.grad(loss, scores)
    (expected_grad,) = torch.autograd.grad(expected, scores)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


@given(nce_problems())
def test_nce_loss_features_matches_reference_scores(p):
    a, b = _features(p)
    loss = nce_loss_features(a, b, **_opts(p))
    expected = ref.nce_loss(torch.einsum("id,jcd->ijc", a, b), p["pos_offset"], p["penalty"], p["clip"])
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(loss, (a, b))
    expected_grads = torch.autograd.grad(expected, (a, b))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@given(nce_problems())
def test_log_probs_are_normalised_log_softmax_entries(p):
    scores = _scores(p)
    snce = nce_log_probs(scores, pos_offset=p["pos_offset"], clip=p["clip"], chunk_size=p["chunk_size"])
    assert snce.shape == (p["na"], p["nc"])
    assert (snce <= 0).all()
    torch.testing.assert_close(snce, ref.nce_log_probs(scores, p["pos_offset"], p["clip"]))


@pytest.mark.parametrize("clip,penalty", [(None, 0.0), (3.0, 0.1)])
def test_gradcheck_float64(clip, penalty):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(5, 2, 4, dtype=torch.float64, generator=g, requires_grad=True)
    s = torch.randn(3, 5, 2, dtype=torch.float64, generator=g, requires_grad=True)
    opts = dict(pos_offset=1, clip=clip, penalty=penalty, chunk_size=2)
    assert torch.autograd.gradcheck(lambda a, b: nce_loss_features(a, b, **opts), (a, b))
    assert torch.autograd.gradcheck(lambda s: nce_loss(s, **opts), (s,))
    # second call through the same graph (retain_graph) gives the same gradient
    loss = nce_loss_features(a, b, **opts)
    first = torch.autograd.grad(loss, a, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(loss, a)[0], first)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_stable_at_scores_of_1e4(sign):
    # positives at +-1e4, negatives random at the same magnitude: finite loss and gradients
    g = torch.Generator().manual_seed(1)
    scores = 1e4 * torch.randn(4, 4, 3, generator=g)
    idx = torch.arange(4)
    scores[idx, idx] = sign * 1e4
    scores.requires_grad_()
    for clip in (None, 20.0):
        loss = nce_loss(scores, clip=clip, penalty=0.04)
        (grad,) = torch.autograd.grad(loss, scores)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    # a perfectly separating critic has loss -> 0; its exact value is log(1 + sum e^(neg - pos))
    separated = torch.full((3, 3, 2), -1e4)
    separated[torch.arange(3), torch.arange(3)] = 1e4
    assert float(nce_loss(separated)) == 0.0
    a = torch.full((2, 3), 100.0, requires_grad=True)
    b = torch.full((2, 2, 3), 100.0, requires_grad=True)
    loss = nce_loss_features(a, b)                      # scores 3e4, all tied
    loss.backward()
    # float32 resolves 3e4 to ~2e-3: chance level log 3 up to that rounding
    assert abs(loss.item() - math.log(nce_candidates(2, 2))) < 1e-2
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_more_than_1e5_negatives_per_positive():
    # 4 local antecedents against 2100 gathered consequents of 49 locations: 102,851 negatives each
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 8, generator=g, requires_grad=True)
    b = torch.randn(2100, 49, 8, generator=g, requires_grad=True)
    offset = 1000
    loss = nce_loss_features(a, b, pos_offset=offset, clip=20.0)
    loss.backward()
    scores = 20.0 * torch.tanh(torch.einsum("id,jcd->ijc", a.detach().double(), b.detach().double()) / 20.0)
    expected = 0.0
    for i in range(4):
        negatives = torch.cat([scores[i, :i + offset].reshape(-1), scores[i, i + offset + 1:].reshape(-1)])
        assert negatives.numel() == 102_851
        for c in range(49):
            candidates = torch.cat([scores[i, i + offset, c:c + 1], negatives])
            expected -= torch.log_softmax(candidates, dim=0)[0] / (4 * 49)
    assert math.isclose(loss.item(), float(expected), rel_tol=1e-5)
    assert torch.isfinite(b.grad).all()


def test_split_over_ranks_equals_whole_batch():
    # what a DDP rank computes: its local antecedents against all consequents, with pos_offset
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 5, generator=g, dtype=torch.float64)
    b = torch.randn(6, 4, 5, generator=g, dtype=torch.float64)
    whole = nce_loss_features(a, b, penalty=0.1, clip=5.0)
    halves = [nce_loss_features(a[r * 3:(r + 1) * 3], b, pos_offset=3 * r, penalty=0.1, clip=5.0) for r in (0, 1)]
    torch.testing.assert_close(whole, sum(halves) / 2)


def test_chance_level_and_chunking_do_not_change_result():
    assert math.isclose(float(nce_loss(torch.zeros(5, 5, 7))), math.log(1 + 4 * 7), rel_tol=1e-6)
    g = torch.Generator().manual_seed(4)
    s = torch.randn(7, 9, 3, generator=g, dtype=torch.float64)
    results = {nce_loss(s, pos_offset=2, chunk_size=c).item() for c in (1, 2, 3, 7, 100)}
    assert max(results) - min(results) < 1e-12


def test_half_precision_features_use_float32_softmax():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(8, 16, generator=g), torch.randn(8, 3, 16, generator=g)
    exact = nce_loss_features(a, b)
    half = nce_loss_features(a.bfloat16(), b.bfloat16())
    assert half.dtype == torch.float32 and torch.isfinite(half)
    assert abs(float(half) - float(exact)) < 0.05 * float(exact)


@pytest.mark.parametrize("call,message", [
    (lambda: nce_loss(torch.randn(3, 3, 2).long()), "floating-point"),
    (lambda: nce_loss(torch.randn(3, 3, 2, 1)), "shape"),
    (lambda: nce_loss(torch.randn(1, 1, 4)), "nb >= 2"),
    (lambda: nce_loss(torch.randn(3, 2, 4)), "pos_offset"),
    (lambda: nce_loss(torch.randn(3, 4, 2), pos_offset=2), "pos_offset"),
    (lambda: nce_loss(torch.full((2, 2, 2), float("nan"))), "NaN"),
    (lambda: nce_loss(torch.randn(2, 2, 2), clip=0.0), "clip"),
    (lambda: nce_loss(torch.randn(2, 2, 2), penalty=-1.0), "penalty"),
    (lambda: nce_loss(torch.randn(2, 2, 2), chunk_size=0), "chunk_size"),
    (lambda: nce_loss_features(torch.randn(2, 3), torch.randn(2, 4, 5)), "same d"),
    (lambda: nce_loss_features(torch.randn(3, 3), torch.randn(2, 4, 3)), "na <= nb"),
    (lambda: nce_loss_features(torch.randn(2, 3), torch.randn(2, 4, 3).double()), "dtype"),
    (lambda: nce_loss_features(torch.randn(2, 3), torch.full((2, 4, 3), float("inf"))), "infinite"),
])
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_size", [None, 3])   # None: the plain path at this size; 3: the chunked kernel
def test_nce_loss_features_on_device(device, dtype, chunk_size):
    """Loss and gradients on the device (float32, bfloat16) against float64 on the CPU, with
    positives by offset and by index (several antecedents per consequent image)."""
    g = torch.Generator().manual_seed(6)
    a64 = torch.randn(10, 8, generator=g, dtype=torch.float64)
    b64 = torch.randn(12, 5, 8, generator=g, dtype=torch.float64)
    pos = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-4, "atol": 1e-5}
    for opts in ({"pos_offset": 2}, {"pos_index": pos}):
        a, b = (t.to(device, dtype).requires_grad_() for t in (a64, b64))
        dev_opts = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in opts.items()}
        loss = nce_loss_features(a, b, penalty=0.04, clip=20.0, chunk_size=chunk_size, **dev_opts)
        loss.backward()
        a_ref, b_ref = a64.clone().requires_grad_(), b64.clone().requires_grad_()
        expected = nce_loss_features(a_ref, b_ref, penalty=0.04, clip=20.0, **opts)
        expected.backward()
        assert loss.device.type == device and loss.dtype == torch.float32
        torch.testing.assert_close(loss.double().cpu(), expected, **tol)
        torch.testing.assert_close(a.grad.double().cpu(), a_ref.grad, **tol)
        torch.testing.assert_close(b.grad.double().cpu(), b_ref.grad, **tol)


def test_finite_checks_off_gives_a_nan_loss_instead_of_an_error():
    """Inside ``finite_checks(False)`` (the trainer kit's step) the kernels read no value back: NaN
    scores give a NaN loss, which the caller checks at its own sync points."""
    from mi_estimators.bounds import finite_checks

    a, b = torch.randn(10, 8), torch.randn(10, 49, 8)
    b[3, 2, 1] = float("nan")
    for chunk_size in (None, 3):                         # the plain path at this size, the chunked kernel
        with pytest.raises(ValueError, match="NaN"):
            nce_loss_features(a, b, chunk_size=chunk_size)
        with finite_checks(False):
            assert torch.isnan(nce_loss_features(a, b, chunk_size=chunk_size))
