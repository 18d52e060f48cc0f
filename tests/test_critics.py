"""Critics: the score convention against a naive pair-by-pair reference, stacking, input hints (the
closed-form Gaussian critic fitted to data is the Gaussian copula's, tested in test_copula.py). What
every critic must do (shapes, gradients, ValueErrors, pairwise scores) is checked for every
registered critic by the conformance kit in test_conformance.py."""

import pytest
import torch
from hypothesis import given, strategies as st

from mi_estimators.critics import (BilinearCritic, ConcatCritic, SeparableCritic, StackedLinear,
                                   unstack)

KINDS = ["separable", "concat", "bilinear", "separable+norm", "concat+norm"]
DIMS = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(2, 7))


def _naive_scores(critic, x, y):
    """scores[i, j] = T(x_i, y_j), one pair at a time through the critic's own definition."""
    n = x.shape[0]
    out = torch.empty(n, n)
    for i in range(n):
        for j in range(n):
            xi, yj = x[i:i + 1], y[j:j + 1]
            if getattr(critic, "norm_feature", False):  # [x, mean(x²)] by hand
                xi = torch.cat([xi, (xi ** 2).sum().reshape(1, 1) / xi.shape[1]], dim=1)
                yj = torch.cat([yj, (yj ** 2).sum().reshape(1, 1) / yj.shape[1]], dim=1)
            if isinstance(critic, SeparableCritic):
                out[i, j] = (critic.g(xi) * critic.h(yj)).sum()
            elif isinstance(critic, ConcatCritic):
                out[i, j] = critic.f(torch.cat([xi, yj], dim=1)).squeeze()
            else:
                s = xi @ critic.weight @ yj.t()
                if critic.quadratic:
                    s = s + xi @ critic.a @ xi.t() + yj @ critic.b @ yj.t() + critic.c
                out[i, j] = s.squeeze()
    return out


def _make(kind, dx, dy, **kw):
    if kind.endswith("+norm"):
        kind, kw = kind.removesuffix("+norm"), dict(kw, norm_feature=True, activation="silu")
    if kind == "separable":
        return SeparableCritic(dx, dy, hidden=8, embed_dim=3, **kw)
    if kind == "concat":
        return ConcatCritic(dx, dy, hidden=8, **kw)
    c = BilinearCritic(dx, dy, quadratic=True, **kw)
    with torch.no_grad():  # non-zero weights, so that the test can fail
        for p in c.parameters():
            p.normal_()
    return c


@pytest.mark.parametrize("kind", KINDS)
@given(dims=DIMS, seed=st.integers(0, 2**16))
def test_scores_match_naive_pairwise(kind, dims, seed):
    dx, dy, n = dims
    torch.manual_seed(seed)
    critic = _make(kind, dx, dy)
    x, y = torch.randn(n, dx), torch.randn(n, dy)
    scores = critic(x, y)
    assert scores.shape == (n, n)
    torch.testing.assert_close(scores, _naive_scores(critic, x, y), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_stacked_copy_k_equals_unstacked(kind):
    torch.manual_seed(0)
    stacked = _make(kind, 3, 2, n_models=4)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    scores = stacked(x, y)
    assert scores.shape == (4, 6, 6)
    for k in range(4):
        single = unstack(stacked, k)
        torch.testing.assert_close(scores[k], single(x, y), rtol=1e-5, atol=1e-5)
    # copies are independent: gradient of copy 1's scores leaves copy 0's weights untouched
    scores[1].sum().backward()
    for p in stacked.parameters():
        assert p.grad[0].abs().max() == 0 and p.grad[1].abs().max() > 0


def test_stacked_linear_from_linears_matches():
    lins = [torch.nn.Linear(3, 5) for _ in range(3)]
    st_lin = StackedLinear.from_linears(lins)
    x = torch.randn(4, 3)
    torch.testing.assert_close(st_lin(x), torch.stack([lin(x) for lin in lins]))


def test_bad_input_messages_say_how_to_fix():
    # the kit (test_conformance.py) checks that every critic raises ValueError naming the problem;
    # here: the built-ins' messages give the expected shape and the fix
    critic = SeparableCritic(2, 3, hidden=4)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        critic(torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"reshape 1-D data with x\[:, None\]"):
        critic(torch.randn(5), torch.randn(5, 3))
    with pytest.raises(ValueError, match="torch.as_tensor"):
        critic(torch.ones(5, 2, dtype=torch.long), torch.randn(5, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_rectangular_scores_are_row_chunks_of_the_full_matrix(kind):
    torch.manual_seed(1)
    critic = _make(kind, 3, 2)
    x, y = torch.randn(7, 3), torch.randn(7, 2)
    full = critic(x, y)
    torch.testing.assert_close(torch.cat([critic(x[:3], y), critic(x[3:], y)]), full)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="activation"):
        SeparableCritic(2, 3, activation="nope")
    with pytest.raises(ValueError, match="x_dim"):
        ConcatCritic(0, 3)
