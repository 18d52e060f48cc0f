"""The multiscale NCE objective against a deliberately naive reference, and the mixture at K=1."""

from __future__ import annotations

import math

import pytest
import torch

from mi_estimators_amdim.objective import PAIRS, MultiscaleNCE, NCEOptions, scores_of



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


def naive_objective(obj: MultiscaleNCE, f1: dict, f2: dict, picks: list | None = None) -> torch.Tensor:
    """The objective with every term looped; 5→5 over all antecedent locations, or over the
    locations ``picks[direction]`` ``(B, n)`` drawn per image."""
    scale = obj.n_rkhs ** -0.25
    views = []
    for f in (f1, f2):
        views.append({n: (h(f[n]) * scale if n == "f1" else
                          (h(f[n]) * scale).flatten(2).transpose(1, 2))
                      for n, h in obj.heads.items()})
    total = 0.0
    for pair in obj.pairs:
        ant, con = PAIRS[pair]
        for direction, (src, dst) in enumerate(((views[0], views[1]), (views[1], views[0]))):
            if ant == "f1":
                total = total + 0.5 * naive_nce(src[ant], dst[con], obj.penalty, obj.clip)
            else:
                b, n5 = src[ant].shape[:2]
                rows = torch.arange(b)
                chosen = picks[direction] if picks is not None else torch.arange(n5).expand(b, n5)
                per_loc = [naive_nce(src[ant][rows, chosen[:, k]], dst[con], obj.penalty, obj.clip)
                           for k in range(chosen.shape[1])]
                total = total + 0.5 * torch.stack(per_loc).mean()
    return total


def reference_nce(r_src: torch.Tensor, r_trg: torch.Tensor, penalty: float, clip: float) -> torch.Tensor:
    """The authors' algorithm (amdim-public, ``NCE_MI_MULTI``): float masks of positives and negatives,
    the negatives' max as shift, masked exp-sums. ``r_src`` (N, d), ``r_trg`` (N, L, d); the
    scores are their dot products divided by sqrt(d)."""
    n, n_loc, d = r_trg.shape
    raw = (r_src @ r_trg.reshape(n * n_loc, -1).T).reshape(n, n, n_loc) / d ** 0.5
    reg = penalty * (raw ** 2).mean()
    s = clip * torch.tanh(raw / clip)
    mask_pos = torch.eye(n)[:, :, None].expand(n, n, n_loc)
    mask_neg = 1.0 - mask_pos
    pos = (mask_pos * s).sum(dim=1)
    neg = (mask_neg * s - clip * mask_pos).reshape(n, -1)
    shift = neg.max(dim=1, keepdim=True)[0]
    sumexp = (mask_neg.reshape(n, -1) * torch.exp(neg - shift)).sum(dim=1, keepdim=True)
    return -(pos - shift - torch.log(torch.exp(pos - shift) + sumexp)).mean() + reg


def _features(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"f1": torch.randn(b, 12, generator=g), "f5": torch.randn(b, 10, 3, 3, generator=g),
             "f7": torch.randn(b, 6, 4, 4, generator=g)} for _ in range(2)]


@pytest.mark.parametrize("clip", [20.0, 1.5, None])
def test_objective_matches_naive_reference(clip):
    torch.manual_seed(0)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, 16, NCEOptions(penalty=4e-2, clip=clip, locations_55=None))
    f1, f2 = _features()
    loss, parts = obj(f1, f2)
    ref = naive_objective(obj, f1, f2)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    assert set(parts) == {"1-7", "1-5", "5-5", "loss"}


def test_gradients_match_naive_reference():
    torch.manual_seed(1)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, 16, NCEOptions(clip=3.0, locations_55=None))
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
    plain = MultiscaleNCE(channels, 16, NCEOptions(clip=5.0, locations_55=None))
    mix = MultiscaleNCE(channels, 16, NCEOptions(clip=5.0, bound="mixture_nce", mixture=1, tau=2.0, alpha=0.3,
                                                  locations_55=None))
    mix.load_state_dict(plain.state_dict())
    assert mix.bound is not None and plain.bound is None
    f1, f2 = _features(seed=2)
    for f in (f1, f2):
        f["f1"].requires_grad_(True)
    (l_plain, p_plain), (l_mix, p_mix) = plain(f1, f2), mix(f1, f2)
    n = f1["f1"].shape[0]
    for pair, n_loc in (("1-7", 16), ("1-5", 9)):
        shift = math.log(1 + (n - 1) * n_loc)
        assert float(p_mix[pair]) == pytest.approx(float(p_plain[pair]) - shift, rel=1e-5, abs=1e-5)
    assert float(p_mix["5-5"]) == pytest.approx(float(p_plain["5-5"]), rel=1e-6)
    g_plain = torch.autograd.grad(l_plain, [f1["f1"], f2["f1"]])
    g_mix = torch.autograd.grad(l_mix, [f1["f1"], f2["f1"]])
    for x, y in zip(g_mix, g_plain):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_registry_infonce_path_equals_fused_path():
    """``bound_options`` route infonce through the generic (materialised-score) path: same gradients."""
    torch.manual_seed(5)
    channels = {"f1": 12, "f5": 10, "f7": 6}
    fused = MultiscaleNCE(channels, 16, NCEOptions(clip=7.0, locations_55=None))
    generic = MultiscaleNCE(channels, 16, NCEOptions(clip=7.0, bound_options={"clip": None}, locations_55=None))
    generic.load_state_dict(fused.state_dict())
    f1, f2 = _features(seed=5)
    f2["f7"].requires_grad_(True)
    (g_a,) = torch.autograd.grad(fused(f1, f2)[0], f2["f7"])
    (g_b,) = torch.autograd.grad(generic(f1, f2)[0], f2["f7"])
    torch.testing.assert_close(g_a, g_b, rtol=1e-4, atol=1e-6)


def test_mixture_k_components_shapes_and_gradient():
    torch.manual_seed(3)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, 16, NCEOptions(mixture=3, tau=1.0, alpha=0.1))
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
        MultiscaleNCE({"f1": 4, "f5": 4, "f7": 4}, 8, NCEOptions(pairs=("1-9",)))
    with pytest.raises(ValueError, match="mixture"):
        MultiscaleNCE({"f1": 4, "f5": 4, "f7": 4}, 8, NCEOptions(mixture=0))
    with pytest.raises(ValueError, match="exposes only"):
        MultiscaleNCE({"f1": 4}, 8)


def test_random_55_locations_estimate_the_all_locations_average():
    """n random antecedent locations per image: unbiased for the all-locations 5→5 term."""
    torch.manual_seed(4)
    full = MultiscaleNCE({"f5": 10}, 16, NCEOptions(pairs=("5-5",), locations_55=None))
    sampled = MultiscaleNCE({"f5": 10}, 16, NCEOptions(pairs=("5-5",), locations_55=2))
    sampled.load_state_dict(full.state_dict())
    f1, f2 = _features(b=4, seed=4)
    with torch.no_grad():
        exact = float(full(f1, f2)[0])
    with torch.no_grad():
        draws = torch.tensor([float(sampled(f1, f2)[0]) for _ in range(60)])
    assert abs(float(draws.mean()) - exact) < 4 * float(draws.std()) / 60 ** 0.5 + 1e-6
    assert float(draws.std()) > 0  # it does sample
    every = MultiscaleNCE({"f5": 10}, 16, NCEOptions(pairs=("5-5",), locations_55=9))
    every.load_state_dict(full.state_dict())
    assert float(every(f1, f2)[0].detach()) == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("n", [1, 3])
def test_sampled_55_locations_match_naive_reference_on_the_same_draws(n):
    """The default (one random 5→5 location per image, as the authors' code) against the naive
    objective evaluated on the very locations drawn (same RNG stream)."""
    torch.manual_seed(6)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, 16,
                        NCEOptions(clip=20.0, **({} if n == 1 else {"locations_55": n})))
    assert obj.locations_55 == n
    f1, f2 = _features(seed=6)
    torch.manual_seed(7)
    loss, _ = obj(f1, f2)
    torch.manual_seed(7)  # the objective draws (B, n) locations for x1→x2, then for x2→x1
    picks = [torch.randint(0, 9, (5, n)) for _ in range(2)]
    torch.testing.assert_close(loss, naive_objective(obj, f1, f2, picks), rtol=1e-5, atol=1e-5)


def test_fused_nce_equals_the_authors_algorithm():
    """On equal inputs the fused NCE term (penalty and clip as the authors' code: 5e-2, 20) equals
    their mask-based computation, for global→local and for one 5→5 location per image."""
    g = torch.Generator().manual_seed(8)
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, 16, NCEOptions(penalty=5e-2, clip=20.0))
    src, trg = 3 * torch.randn(6, 16, generator=g), 3 * torch.randn(6, 49, 16, generator=g)
    torch.testing.assert_close(obj._loss(src, trg, 0), reference_nce(src, trg, 5e-2, 20.0), rtol=3e-6, atol=3e-6)
    maps = torch.randn(6, 25, 16, generator=g)
    torch.manual_seed(9)
    got = obj._loss_55(maps, trg[:, :25], 0)
    torch.manual_seed(9)
    picked = maps[torch.arange(6), torch.randint(0, 25, (6, 1))[:, 0]]
    torch.testing.assert_close(got, reference_nce(picked, trg[:, :25], 5e-2, 20.0), rtol=3e-6, atol=3e-6)


def test_parts_are_detached_device_tensors():
    obj = MultiscaleNCE({"f1": 12, "f5": 10, "f7": 6}, n_rkhs=16)
    f1, f2 = _features()
    loss, parts = obj(f1, f2)
    assert loss.requires_grad
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in parts.values())
    torch.testing.assert_close(parts["loss"], parts["1-7"] + parts["1-5"] + parts["5-5"])


@pytest.mark.parametrize("options,message", [
    ({"mixture": True}, "mixture"), ({"locations_55": 0}, "locations_55"), ({"penalty": -1.0}, "penalty"),
    ({"clip": 0.0}, "clip"), ({"chunk_size": 0}, "chunk_size"), ({"n_rkhs": 0}, "n_rkhs")])
def test_bad_numbers_raise_value_error(options, message):
    kwargs = {"n_rkhs": 8, **options}
    n_rkhs = kwargs.pop("n_rkhs")
    with pytest.raises(ValueError, match=message):
        MultiscaleNCE({"f1": 4, "f5": 4, "f7": 4}, n_rkhs, NCEOptions(**kwargs))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_step_on_device(device):
    """Encoder + objective on the device: the loss of the CPU in float32, its gradient finite, and
    under bfloat16 autocast a finite loss near it."""
    from mi_estimators.training import feature_shapes
    from mi_estimators_amdim.encoder import AMDIMEncoder
    from mi_estimators_amdim.trainer import AMDIMObjective

    torch.manual_seed(0)
    enc = AMDIMEncoder(1, 28, ndf=4, n_rkhs=16, n_depth=1)
    cpu = AMDIMObjective(enc, feature_shapes(enc, 1, 28), n_rkhs=16, channels_last=True,
                         nce=NCEOptions(locations_55=None))
    x = torch.rand(2, 6, 1, 28, 28)
    with torch.no_grad():
        expected = cpu((x[0], x[1]))["loss"]
    model = cpu.to(device)
    out = model((x[0].to(device), x[1].to(device)))
    out["loss"].backward()
    torch.testing.assert_close(out["loss"].detach().cpu(), expected, rtol=1e-4, atol=1e-4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.autocast(device_type=device, dtype=torch.bfloat16), torch.no_grad():
        low = model((x[0].to(device), x[1].to(device)))["loss"]
    assert torch.isfinite(low) and abs(float(low) - float(expected)) < 0.05 * float(expected)
