"""The AMDIM trainer end to end on tiny data: learning, resume, third-party encoders, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mi_estimators as mie
from mi_estimators.training import Augment, ImageData, load_checkpoint, load_dataset, two_views
from mi_estimators_amdim.trainer import AMDIMConfig, AMDIMObjective, AMDIMTrainer, resolve_scales

FMNIST = Path("/usr/share/datasets/fashion-mnist")
TINY = ["--ndf", "4", "--n-rkhs", "32", "--n-depth", "1", "--no-progress", "--warmup-steps", "0"]


def _random_images(n=64, size=28, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageData((torch.rand(n, channels, size, size, generator=g) * 255).to(torch.uint8),
                     torch.arange(n) % 4)


@pytest.mark.skipif(not FMNIST.is_dir(), reason=f"Fashion-MNIST is not installed at {FMNIST} "
                    "(apt-get install dataset-fashion-mnist)")
def test_loss_decreases_on_a_fashion_mnist_slice(tmp_path):
    train = load_dataset("fashion-mnist", "train", limit=192)
    test = load_dataset("fashion-mnist", "test", limit=100)
    argv = TINY + ["--epochs", "3", "--batch-size", "32", "--lr", "3e-3", "--locations-55", "2",
                   "--limit", "192", "--test-limit", "100", "--schedule", "constant", "--no-online-probe",
                   "--out", str(tmp_path / "run")]
    args = AMDIMTrainer.parse(argv)
    metrics = AMDIMTrainer.run(args, train=train, test=test)
    losses = [h["loss"] for h in metrics["history"]]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    # chance level of the terms is log(1 + (N-1)L) ~ 6.3-7.3 nats at N = 32; training goes below
    assert losses[-1] < losses[0] - 0.5, losses
    assert 0.0 <= metrics["linear_probe_test_acc"] <= 1.0
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["linear_probe_test_acc"] == metrics["linear_probe_test_acc"]
    # probing the checkpoint again on the run's own features reproduces the trainer's figure
    again = AMDIMTrainer.run(AMDIMTrainer.parse(argv + ["--eval-only", "--probe-features", "global"]),
                             train=train, test=test)
    assert again["linear_probe_test_acc"] == pytest.approx(metrics["linear_probe_test_acc"], abs=1e-6)
    # ... and other features of the same checkpoint can be probed too
    f5 = AMDIMTrainer.run(AMDIMTrainer.parse(argv + ["--eval-only", "--probe-features", "f5"]),
                          train=train, test=test)
    assert 0.0 <= f5["linear_probe_test_acc"] <= 1.0


def test_resume_continues_exactly(tmp_path):
    data, test = _random_images(32), _random_images(16, seed=1)
    common = TINY + ["--batch-size", "16", "--schedule", "constant", "--lr", "1e-3", "--locations-55", "1"]
    straight = AMDIMTrainer.run(AMDIMTrainer.parse(common + ["--epochs", "2", "--out", str(tmp_path / "a")]),
                                train=data, test=test)
    AMDIMTrainer.run(AMDIMTrainer.parse(common + ["--epochs", "1", "--out", str(tmp_path / "b")]),
                     train=data, test=test)
    resumed = AMDIMTrainer.run(AMDIMTrainer.parse(common + ["--epochs", "2", "--resume",
                                                            "--out", str(tmp_path / "b")]),
                               train=data, test=test)
    assert resumed["steps"] == straight["steps"] == 4
    assert resumed["history"][1]["loss"] == pytest.approx(straight["history"][1]["loss"], rel=1e-5)
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


class TinyThirdPartyEncoder(nn.Module):
    """Only a 'global' vector and one local map named 'conv' (no f5/f7)."""

    def __init__(self, in_channels: int, image_size: int, width: int = 8):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(width, 16)

    def forward(self, x):
        m = self.conv(x)
        return {"global": self.fc(m.mean((2, 3))), "conv": m}


def test_third_party_encoder_with_one_local_map(tmp_path):
    mie.register("tiny-third-party", TinyThirdPartyEncoder, kind="encoders", overwrite=True)
    try:
        args = AMDIMTrainer.parse(["--encoder", "tiny-third-party", "--encoder-option", "width=6",
                                   "--n-rkhs", "24", "--epochs", "1", "--batch-size", "16",
                                   "--no-progress", "--out", str(tmp_path / "run")])
        metrics = AMDIMTrainer.run(args, train=_random_images(32), test=_random_images(16, seed=1))
        assert metrics["steps"] == 2
        assert {"nce_1-7", "nce_1-5", "nce_5-5"} <= set(metrics["history"][0])
    finally:
        mie.unregister("tiny-third-party", kind="encoders")


def test_amdim_flags_are_refused_for_another_encoder(tmp_path):
    with pytest.raises(ValueError, match="--encoder-option"):  # up front, when the config is made
        AMDIMTrainer.parse(["--encoder", "dim", "--ndf", "8", "--out", str(tmp_path)])


#: every flag of `mi-estimators train amdim` before the options became a config (names and defaults kept)
FLAGS_BEFORE = {
    "dataset": "fashion-mnist", "data_dir": None, "limit": None, "test_limit": None, "image_size": None,
    "num_workers": 0, "translate": 2, "crop_scale": None, "flip": True, "colour": 0.4, "grayscale": 0.25,
    "encoder": "amdim", "encoder_option": [], "bound": "infonce", "bound_option": [], "epochs": 10,
    "batch_size": 128, "lr": 0.0002, "weight_decay": 0.0, "warmup_steps": 100, "schedule": "cosine",
    "grad_clip": 10.0, "seed": 0, "out": "runs/amdim", "resume": False, "eval_only": False, "device": "auto",
    "precision": "auto", "probe_features": None, "probe_limit": None, "probe_iters": 200,
    "online_probe": True, "knn": 0, "ndf": None, "n_rkhs": None, "n_depth": None, "pairs": "1-7,1-5,5-5",
    "penalty": 0.04, "clip": 20.0, "mixture": 1, "tau": 1.0, "alpha": None, "locations_55": None,
    "chunk_size": None}
#: changed and added since (CHANGELOG): the authors' one 5->5 location and embedding batch norm, and
#: the augmentations for images of any channel count (off by default), --progress (bars even off a
#: terminal; by default they show only on one)
FLAGS_CHANGED = {"locations_55": 1, "embed_bn": True, "brightness": 0.0, "contrast": 0.0, "erase": 0.0,
                 "noise": 0.0, "progress": None}
#: --no-progress, a flag before, is now the off side of --progress (one setting, one field)


def test_command_line_keeps_its_flags_and_defaults():
    parser = AMDIMConfig.parser("mi-estimators train amdim")
    defaults = {a.dest: a.default for a in parser._actions if a.dest != "help"}
    expected = {**FLAGS_BEFORE, **FLAGS_CHANGED}
    assert {k: v for k, v in defaults.items() if k != "log_every"} == expected
    flags = {s for a in parser._actions for s in a.option_strings}
    negations = {"--no-flip", "--no-online-probe", "--no-progress", "--no-embed-bn"}
    assert {"--" + k.replace("_", "-") for k in expected} | negations | {"--log-every"} == flags - {"-h", "--help"}


@pytest.mark.parametrize("options, message", [
    ({"mixture": True}, r"mixture \(--mixture\) must be an integer >= 1"),
    ({"mixture": 0}, "mixture .* >= 1"),
    ({"tau": 0.0}, "tau .*positive"),
    ({"penalty": -1.0}, "penalty .*>= 0"),
    ({"clip": -1.0}, "clip .*>= 0"),
    ({"pairs": "1-7,2-2"}, "pairs .*subset of 1-7,1-5,5-5"),
    ({"locations_55": 0}, "locations_55 .*>= 1"),
    ({"ndf": 2.5}, "ndf .*integer"),
])
def test_options_are_checked_up_front(options, message):
    with pytest.raises(ValueError, match=message):
        AMDIMConfig(**options)


def test_encoder_options_are_derived_not_written_back():
    config = AMDIMConfig(ndf=4, n_depth=1, encoder_option=("ndf=8",))
    assert config.encoder_kwargs() == {"ndf": 8, "n_depth": 1}  # an explicit --encoder-option wins
    assert config.encoder_option == ("ndf=8",)  # the config is never changed
    assert AMDIMConfig(encoder="dim", n_rkhs=16).encoder_kwargs() == {}  # n_rkhs: only the critics' size


def test_views_come_from_the_kits_augmentation():
    """One shared flip, then two views of the kit's Augment without its own flip: the same draws as
    building the augmentation by hand."""
    trainer = AMDIMTrainer(AMDIMConfig(translate=2, colour=0.4, grayscale=0.25, flip=True))
    trainer.mean, trainer.std = torch.zeros(3), torch.ones(3)
    x = torch.rand(8, 3, 28, 28)
    torch.manual_seed(3)
    v1, v2 = trainer.make_inputs(x)
    torch.manual_seed(3)
    w1, w2 = two_views(x, Augment(translate=2, colour=0.4, grayscale=0.25), shared_flip=True)
    assert torch.equal(v1, w1) and torch.equal(v2, w2) and not torch.equal(v1, v2)


def test_resolve_scales():
    assert resolve_scales({"global": (8,), "f5": (4, 5, 5), "f7": (2, 7, 7), "f1": (8,)}) == \
        {"f1": "global", "f5": "f5", "f7": "f7"}
    assert resolve_scales({"global": (8,), "a": (4, 3, 3), "b": (2, 9, 9)}) == \
        {"f1": "global", "f5": "a", "f7": "b"}
    assert resolve_scales({"global": (8,), "m": (4, 3, 3)}) == {"f1": "global", "f5": "m", "f7": "m"}


def test_objective_returns_the_kit_contract():
    from mi_estimators.training import feature_shapes
    from mi_estimators_amdim.encoder import AMDIMEncoder

    enc = AMDIMEncoder(1, 28, ndf=4, n_rkhs=16, n_depth=1)
    obj = AMDIMObjective(enc, feature_shapes(enc, 1, 28), n_rkhs=16, channels_last=True)
    x = torch.rand(6, 1, 28, 28)
    out = obj((x, x.flip(-1)))
    assert out["loss"].dim() == 0 and set(out["logs"]) == {"nce_1-7", "nce_1-5", "nce_5-5"}
    assert out["features"]["global"].shape == (6, 16)
    out["loss"].backward()
    assert enc.stem[1].weight.grad is not None
