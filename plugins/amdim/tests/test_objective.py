"""The multiscale NCE objective against a deliberately naive reference, and the mixture at K=1."""

from __future__ import annotations

import math

import pytest
import torch

from mi_estimators_amdim.objective import PAIRS, MultiscaleNCE, scores_of



def naive_nce(a: torch.Tensor, c: torch.Tensor, penalty: float, clip: float | None) -> torch.Tensor:
    """Loop over antecedents and positives: log-softmax of the positive against the other images."""
    na, nb, nc = a.shape[0], c.shape[0], c.shape[1]
    raw = torch.stack([torch.stack([c[j] @ a[i] for j in range(nb)]) for i in range(na)])
    s = raw if clip is None else clip * torch.tanh(raw / clip)
    total = 0.0
    for i in range(na):
        negatives = torch.cat([s[i, j] for j in range(nb) if j != i])
        for loc in range(nc):
            logits = torch.cat([s[i, i, loc].reshape(1), negatives])
            total = total - torch.log_softmax(logits, 0)[0]
    return total / (na * nc) + penalty * raw.pow(2).mean()


def naive_objective(obj: MultiscaleNCE, f1: dict, f2: dict) -> torch.Tensor:
    scale = obj.n_rkhs ** -0.25
    views = []
    for f in (f1, f2):
        views.append({n: (h(f[n]) * scale if n == "f1" else
                          (h(f[n]) * scale).flatten(2).transpose(1, 2))
                      for n, h in obj.heads.items()})
    total = 0.0
    for pair in obj.pairs:
        ant, con = PAIRS[pair]
        for src, dst in ((views[0], views[1]), (views[1], views[0])):
            if ant == "f1":
                total = total + 0.5 * naive_nce(src[ant], dst[con], obj.penalty, obj.clip)
            else:
                n5 = src[ant].shape[1]
                per_loc = [naive_nce(src[ant][:, loc], dst[con], obj.penalty, obj.clip)
                           for loc in range(n5)]
                total = total + 0.5 * torch.stack(per_loc).mean()
    return total


def _features(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"f1": torch.randn(b, 12, generator=g), "f5": torch.randn(b, 10, 3, 3, generator=g),
             "f7": torch.randn(b, 6, 4, 4, generator=g)} for _ in range(2)]


@pytest.mark.parametrize("clip", [20.0, 1.5, None])
def test_objective_matches_naive_reference(clip):
    torch.manual_seed(0)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, n_rkhs=16, penalty=4e-2, clip=clip)
    f1, f2 = _features()
    loss, parts = obj(f1, f2)
    ref = naive_objective(obj, f1, f2)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    assert set(parts) == {"1-7", "1-5", "5-5", "loss"}


def test_gradients_match_naive_reference():
    torch.manual_seed(1)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, n_rkhs=16, clip=3.0)
    f1, f2 = _features(seed=1)
    for f in (f1, f2):
        for v in f.values():
            v.requires_grad_(True)
    g = torch.autograd.grad(obj(f1, f2)[0], [f1["f5"], f2["f7"]])
    g_ref = torch.autograd.grad(naive_objective(obj, f1, f2), [f1["f5"], f2["f7"]])
    for x, y in zip(g, g_ref):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_mixture_k1_equals_plain_nce():
    """One mixture component: q = 1, H(q) = 0, so eq. 18 is the plain NCE of every term.

    The registry's bounds report their losses on the InfoNCE scale, shifted by the constant
    ``log(1 + (N - 1) L)`` from the fused loss; the gradients are the same.
    """
    torch.manual_seed(2)
    channels = {"f1": 12, "f5": 10, "f7": 6}
    plain = MultiscaleNCE(channels, n_rkhs=16, clip=5.0)
    mix = MultiscaleNCE(channels, n_rkhs=16, clip=5.0, bound="mixture_nce", mixture=1,
                        tau=2.0, alpha=0.3)
    mix.load_state_dict(plain.state_dict())
    assert mix.bound is not None and plain.bound is None
    f1, f2 = _features(seed=2)
    for f in (f1, f2):
        f["f1"].requires_grad_(True)
    (l_plain, p_plain), (l_mix, p_mix) = plain(f1, f2), mix(f1, f2)
    n = f1["f1"].shape[0]
    for pair, n_loc in (("1-7", 16), ("1-5", 9)):
        shift = math.log(1 + (n - 1) * n_loc)
        assert p_mix[pair] == pytest.approx(p_plain[pair] - shift, rel=1e-5, abs=1e-5)
    assert p_mix["5-5"] == pytest.approx(p_plain["5-5"], rel=1e-6)
    g_plain = torch.autograd.grad(l_plain, [f1["f1"], f2["f1"]])
    g_mix = torch.autograd.grad(l_mix, [f1["f1"], f2["f1"]])
    for x, y in zip(g_mix, g_plain):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_registry_infonce_path_equals_fused_path():
    """``bound_options`` route infonce through the generic (materialised-score) path: same gradients."""
    torch.manual_seed(5)
    channels = {"f1": 12, "f5": 10, "f7": 6}
    fused = MultiscaleNCE(channels, n_rkhs=16, clip=7.0)
    generic = MultiscaleNCE(channels, n_rkhs=16, clip=7.0, bound_options={"clip": None})
    generic.load_state_dict(fused.state_dict())
    f1, f2 = _features(seed=5)
    f2["f7"].requires_grad_(True)
    (g_a,) = torch.autograd.grad(fused(f1, f2)[0], f2["f7"])
    (g_b,) = torch.autograd.grad(generic(f1, f2)[0], f2["f7"])
    torch.testing.assert_close(g_a, g_b, rtol=1e-4, atol=1e-6)


def test_mixture_k_components_shapes_and_gradient():
    torch.manual_seed(3)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, n_rkhs=16, mixture=3, tau=1.0, alpha=0.1)
    f1, f2 = _features(seed=3)
    f1["f1"].requires_grad_(True)
    loss, parts = obj(f1, f2)
    assert torch.isfinite(loss)
    (g,) = torch.autograd.grad(loss, f1["f1"])
    assert g.abs().sum() > 0


def test_scores_of_shapes():
    a, c = torch.randn(3, 4), torch.randn(5, 7, 4)
    assert scores_of(a, c).shape == (3, 5, 7)
    assert scores_of(torch.randn(3, 2, 4), c).shape == (3, 5, 7, 2)
    torch.testing.assert_close(scores_of(a, c)[1, 2, 3], a[1] @ c[2, 3])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="pairs"):
        MultiscaleNCE({"f1": 4, "f5": 4, "f7": 4}, 8, pairs=("1-9",))
    with pytest.raises(ValueError, match="mixture"):
        MultiscaleNCE({"f1": 4, "f5": 4, "f7": 4}, 8, mixture=0)
    with pytest.raises(ValueError, match="exposes only"):
        MultiscaleNCE({"f1": 4}, 8)


def test_random_55_locations_estimate_the_all_locations_average():
    """n random antecedent locations per image: unbiased for the all-locations 5→5 term."""
    torch.manual_seed(4)
    full = MultiscaleNCE({"f5": 10}, n_rkhs=16, pairs=("5-5",))
    sampled = MultiscaleNCE({"f5": 10}, n_rkhs=16, pairs=("5-5",), locations_55=2)
    sampled.load_state_dict(full.state_dict())
    f1, f2 = _features(b=4, seed=4)
    with torch.no_grad():
        exact = float(full(f1, f2)[0])
    with torch.no_grad():
        draws = torch.tensor([float(sampled(f1, f2)[0]) for _ in range(60)])
    assert abs(float(draws.mean()) - exact) < 4 * float(draws.std()) / 60 ** 0.5 + 1e-6
    assert float(draws.std()) > 0  # it does sample
    every = MultiscaleNCE({"f5": 10}, n_rkhs=16, pairs=("5-5",), locations_55=9)
    every.load_state_dict(full.state_dict())
    assert float(every(f1, f2)[0].detach()) == pytest.approx(exact, rel=1e-6)
