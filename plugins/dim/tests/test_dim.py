"""Deep InfoMax plugin: encoder shapes, score functions against naive loops, prior matching's
gradient routing, tiny training runs, DDP equivalence, third-party encoders."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

import mi_estimators as mie
from mi_estimators.cli import main as cli_main
from mi_estimators.testing.distributed import gloo_available, run_on_ranks
from mi_estimators.training import feature_shapes, gather_with_grad, load_dataset
from mi_estimators_dim.encoders import DIMConvEncoder
from mi_estimators_dim.trainer import DIMConfig, DIMObjective, DIMOptions, DIMTrainer

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION} "
                                   "(apt-get install dataset-fashion-mnist, as root)")


def _objective(alpha=1.0, beta=1.0, gamma=0.1, bound="jsd", batch_norm=True, embed_dim=16, gather=None):
    enc = DIMConvEncoder(1, 28, batch_norm=batch_norm)
    shapes = feature_shapes(enc, 1, 28)
    return DIMObjective(enc, shapes, mie.get(bound), local_key="local",
                        options=DIMOptions(alpha=alpha, beta=beta, gamma=gamma, embed_dim=embed_dim), gather=gather)


@pytest.mark.parametrize("size, local, conv", [(28, 7, 3), (32, 8, 4)])
def test_encoder_shapes(size, local, conv):
    enc = DIMConvEncoder(3, size)
    assert feature_shapes(enc, 3, size) == {"global": (64,), "fc": (1024,), "local": (128, local, local),
                                             "conv": (256, conv, conv)}
    assert "dim" in mie.available("encoders")
    assert isinstance(mie.get("dim", kind="encoders", in_channels=1, image_size=28), DIMConvEncoder)
    with pytest.raises(ValueError, match="--image-size 32"):
        DIMConvEncoder(1, 8)


def test_scores_match_naive_loops():
    torch.manual_seed(0)
    obj = _objective()
    y, m = torch.randn(3, 64), torch.randn(3, 128, 7, 7)
    local = obj.local_scores(y, m)
    glob = obj.global_scores(y, m)
    assert local.shape == (3, 3, 49) and glob.shape == (3, 3)
    for i in range(3):
        u_loc, u_glob = obj.local_y(y[i:i + 1])[0], obj.global_y(y[i:i + 1])[0]
        for j in range(3):
            v_glob = obj.global_m(m[j:j + 1])[0]
            torch.testing.assert_close(glob[i, j], u_glob @ v_glob)
            for loc in (0, 13, 48):
                r, c = divmod(loc, 7)
                col = m[j, :, r, c][None, :, None, None]
                v_loc = (obj.local_m.mlp(col) + obj.local_m.proj(col))[0, :, 0, 0]
                torch.testing.assert_close(local[i, j, loc], u_loc @ v_loc, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bound", ["jsd", "infonce", "dv", "nwj", "smile"])
def test_every_bound_takes_local_and_global_scores(bound):
    torch.manual_seed(0)
    obj = _objective(bound=bound, gamma=0.0)
    out = obj(torch.rand(4, 1, 28, 28))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"local_mi_dv", "global_mi_dv"} <= set(out["logs"])
    assert obj.encoder.conv1[0].weight.grad.abs().sum() > 0


def test_logged_mi_is_the_dv_read_out_and_stays_finite():
    """A few large negative-pair scores: JSD's NWJ(T + 1) read-out explodes, the logged DV one does not."""
    torch.manual_seed(0)
    obj = _objective(alpha=0.0, gamma=0.0)
    x = torch.rand(4, 1, 28, 28)
    out = obj(x)
    feats = obj.encoder(x)
    scores = obj.local_scores(feats["global"], feats["local"]).float()
    torch.testing.assert_close(out["logs"]["local_mi_dv"], mie.get("dv")(scores))
    s = torch.full((8, 8, 4), -2.0)
    s.diagonal(dim1=0, dim2=1).fill_(6.0)
    s[0, 1, :2] = 12.0  # two negative-pair scores of a JSD-trained critic gone large
    assert float(mie.get("jsd")(s)) < -100  # NWJ(T + 1): 7 - mean exp(T_neg)
    dv = float(mie.get("dv")(s))  # 6 - log mean exp(T_neg): finite, and at most log(#negatives) below 6
    assert 6 - 12 <= dv <= 6 and math.isfinite(dv)


def test_prior_matching_routes_gradients():
    torch.manual_seed(0)
    obj = _objective(gamma=1.0)
    y = torch.randn(8, 64, requires_grad=True)
    d_loss, g_loss = obj.prior_terms(y)
    d_params = list(obj.discriminator.parameters())
    # the encoder's loss never trains the discriminator, the discriminator's never trains the encoder
    assert all(g is None for g in torch.autograd.grad(g_loss, d_params, allow_unused=True))
    assert torch.autograd.grad(d_loss, y, allow_unused=True)[0] is None
    assert torch.autograd.grad(g_loss, y)[0].abs().sum() > 0


def test_objective_validates_options():
    with pytest.raises(ValueError, match="alpha \\+ beta > 0"):
        _objective(alpha=0.0, beta=0.0)
    enc = DIMConvEncoder(1, 28)
    with pytest.raises(ValueError, match="not a local map.*'local'"):
        DIMObjective(enc, feature_shapes(enc, 1, 28), mie.get("jsd"), local_key="fc")


def _digits(n):
    return load_dataset("digits", "train", image_size=28, limit=n), load_dataset("digits", "test", image_size=28,
                                                                                 limit=100)


@pytest.mark.parametrize("bound", ["jsd", "infonce"])
def test_loss_decreases_with_any_bound(tmp_path, bound):
    train, test = _digits(128)
    args = DIMTrainer.parse(["--out", str(tmp_path), "--epochs", "3", "--batch-size", "32", "--lr", "1e-3",
                             "--bound", bound, "--no-progress", "--embed-dim", "32"])
    m = DIMTrainer.run(args, train=train, test=test)
    losses = [h["loss"] for h in m["history"]]
    assert losses[-1] < losses[0], losses
    assert m["probe_features"] == "conv" and m["probe_dim"] == 256 * 9


@needs_fashion
def test_cli_on_a_fashion_mnist_slice(tmp_path, capsys):
    rc = cli_main(["train", "dim", "--limit", "256", "--test-limit", "200", "--epochs", "1", "--batch-size", "32",
                   "--alpha", "0.5", "--out", str(tmp_path), "--no-progress", "--knn", "5"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert printed["linear_probe_test_acc"] == written["linear_probe_test_acc"] > 0.3  # 10 classes: chance 0.1
    assert written["config"]["bound"] == "jsd" and written["config"]["alpha"] == 0.5
    assert {"local_mi_dv", "global_mi_dv", "prior_d_loss"} <= set(written["history"][0])


#: every flag of `mi-estimators train dim` before the options became a config (names and defaults kept)
FLAGS_BEFORE = {
    "dataset": "fashion-mnist", "data_dir": None, "limit": None, "test_limit": None, "image_size": None,
    "num_workers": 0, "translate": 0, "crop_scale": None, "flip": False, "colour": 0.0, "grayscale": 0.0,
    "encoder": "dim", "encoder_option": [], "bound": "jsd", "bound_option": [], "epochs": 10, "batch_size": 64,
    "lr": 0.0001, "weight_decay": 0.0, "warmup_steps": 0, "schedule": "cosine", "grad_clip": 10.0, "seed": 0,
    "out": "runs/dim", "resume": False, "eval_only": False, "device": "auto", "precision": "auto",
    "probe_features": None, "probe_limit": None, "probe_iters": 200, "online_probe": True,
    "knn": 0, "alpha": 0.0, "beta": 1.0, "gamma": 0.1, "prior": "uniform", "local_feature": None,
    "embed_dim": 512}
#: flags added since (CHANGELOG): the augmentations for images of any channel count, off by default;
#: --progress (bars even off a terminal; by default they show only on one)
FLAGS_ADDED = {"brightness": 0.0, "contrast": 0.0, "erase": 0.0, "noise": 0.0, "progress": None}
#: --no-progress, a flag before, is now the off side of --progress (one setting, one field)


def test_command_line_keeps_its_flags_and_defaults():
    parser = DIMConfig.parser("mi-estimators train dim")
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    assert {k: v for k, v in defaults.items() if k != "log_every"} == {**FLAGS_BEFORE, **FLAGS_ADDED}
    flags = {s for a in parser._actions for s in a.option_strings}
    negations = {"--no-flip", "--no-online-probe", "--no-progress"}
    assert {"--" + k.replace("_", "-") for k in {**FLAGS_BEFORE, **FLAGS_ADDED}} | negations | {"--log-every"} \
        == flags - {"-h", "--help"}
    assert DIMConfig().to_dict() == {**FLAGS_BEFORE, **FLAGS_ADDED, "log_every": 50}


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli_main(["train", "dim", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--gamma GAMMA weight of prior matching (0: off) (default: 0.1)" in text
    assert "(default: jsd)" in text and "(default: 0.0001)" in text and "dim options:" in text


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "-1"], r"epochs \(--epochs\) must be an integer >= 0, got -1"),
    (["--batch-size", "1"], r"batch_size \(--batch-size\) must be an integer >= 2"),
    (["--alpha", "0", "--beta", "0"], "alpha \\+ beta > 0"),
    (["--gamma", "-1"], r"gamma \(--gamma\) must be a finite number >= 0"),
    (["--embed-dim", "0"], "embed_dim .* >= 1"),
])
def test_bad_options_end_in_one_line_before_any_work(argv, message, tmp_path, capsys):
    assert cli_main(["train", "dim", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()  # nothing was written


def test_runs_from_python_without_the_command_line(tmp_path):
    """The README's example, at a small size."""
    config = DIMConfig(dataset="digits", image_size=28, limit=64, test_limit=50, epochs=1, batch_size=32,
                       embed_dim=16, progress=False, out=str(tmp_path / "run"))
    metrics = DIMTrainer(config).fit()
    assert metrics["steps"] == 2 and metrics["config"]["dataset"] == "digits"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"] == config.to_dict()


def test_third_party_encoder_works_with_dim(tmp_path):
    class Tiny(nn.Module):
        def __init__(self, in_channels, image_size):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, 8, 3, 2, 1)
            self.head = nn.Linear(8 * 14 * 14, 12)

        def forward(self, x):
            m = torch.relu(self.conv(x))
            return {"global": self.head(m.flatten(1)), "patches": m}

    mie.register("tiny-third-party", Tiny, kind="encoders")
    try:
        train, test = _digits(64)
        args = DIMTrainer.parse(["--out", str(tmp_path), "--epochs", "1", "--batch-size", "32",
                                 "--encoder", "tiny-third-party", "--no-progress", "--embed-dim", "16"])
        m = DIMTrainer.run(args, train=train, test=test)
    finally:
        mie.unregister("tiny-third-party", kind="encoders")
    assert m["probe_features"] == "global" and m["steps"] == 2  # local map found by shape: "patches"


# ----------------------------------------------------------------------------- DDP equivalence

B = 3


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2 * B, 1, 28, 28, generator=g)


def _step(model, x):
    model.zero_grad(set_to_none=True)
    loss = model(x)["loss"]
    loss.backward()
    return loss.detach()


def _worker(rank, world, path):
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(_objective(gamma=0.0, batch_norm=False, gather=gather_with_grad))
    loss = _step(model, _batch()[rank * B:(rank + 1) * B])
    dist.all_reduce(loss)
    if rank == 0:
        torch.save({"loss": loss / world,
                    "grads": {k.removeprefix("module."): p.grad for k, p in model.named_parameters()}}, path)


@pytest.mark.skipif(not gloo_available(), reason="needs gloo")
def test_two_ranks_match_one_rank_with_the_global_batch(tmp_path):
    run_on_ranks(_worker, str(tmp_path / "r0.pt"))
    two = torch.load(tmp_path / "r0.pt")
    torch.manual_seed(0)
    model = _objective(gamma=0.0, batch_norm=False)
    loss = _step(model, _batch())
    torch.testing.assert_close(two["loss"], loss, rtol=1e-5, atol=1e-6)
    for k, p in model.named_parameters():
        torch.testing.assert_close(two["grads"][k], p.grad, rtol=1e-4, atol=1e-6, msg=k)
