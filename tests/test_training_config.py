"""The trainers' config: the parser is generated from the fields, values are checked up front,
unknown keys name the closest one."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from mi_estimators.training import TrainConfig, option, override

BASE = {"encoder": "any"}


@pytest.mark.parametrize("key, value, message", [
    ("epochs", -1, r"epochs \(--epochs\) must be an integer >= 0, got -1"),
    ("epochs", True, "epochs .*integer"),
    ("epochs", 2.0, "epochs .*integer"),
    ("batch_size", 1, r"batch_size \(--batch-size\) must be an integer >= 2 \(batch norm"),
    ("lr", 0.0, "lr .*positive finite"),
    ("lr", math.nan, "lr .*positive finite"),
    ("warmup_steps", -1, "warmup_steps .*>= 0"),
    ("grad_clip", -0.5, "grad_clip .*>= 0"),
    ("limit", 0, "limit .*>= 1"),
    ("probe_limit", -3, "probe_limit .*>= 1"),
    ("knn", -1, "knn .*>= 0"),
    ("probe_iters", 0, "probe_iters .*>= 1"),
    ("log_every", 0, "log_every .*>= 1"),
    ("seed", -1, "seed .*>= 0"),
    ("colour", 1.0, r"colour .*\[0, 1\)"),
    ("grayscale", 1.5, r"grayscale .*\[0, 1\]"),
    ("crop_scale", (0.0, 1.0), r"crop_scale .*\(0, 1\]"),
    ("crop_scale", (0.9, 0.5), "crop_scale must satisfy 0 < lo <= hi <= 1"),
    ("dataset", "digit", "did you mean 'digits'"),
    ("schedule", "linear", "schedule .*one of cosine, constant"),
    ("flip", "yes", "flip .*True or False"),
    ("encoder_option", ("width",), "KEY=VALUE"),
])
def test_ranges_are_checked_when_the_config_is_made(key, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**BASE, key: value})


def test_unknown_keys_raise_naming_the_closest():
    with pytest.raises(ValueError, match="unknown TrainConfig option 'batchsize'; did you mean 'batch_size'"):
        TrainConfig.from_dict({**BASE, "batchsize": 8})
    with pytest.raises(ValueError, match="unknown TrainConfig option 'zzz'; the options are dataset, "):
        TrainConfig.from_dict({"zzz": 1})


def test_values_are_normalised_and_round_trip_through_a_plain_dict():
    cfg = TrainConfig(**BASE, lr=1, crop_scale=[0.5, 1], encoder_option=["a=1"], out=Path("x"))
    assert (cfg.lr, cfg.crop_scale, cfg.encoder_option, cfg.out) == (1.0, (0.5, 1.0), ("a=1",), "x")
    plain = cfg.to_dict()
    assert plain["crop_scale"] == [0.5, 1.0] and plain["encoder_option"] == ["a=1"]
    assert all(isinstance(v, (int, float, str, bool, list, type(None))) for v in plain.values())
    assert TrainConfig.from_dict(plain) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 2.0


def test_parser_is_generated_from_the_fields():
    parser = TrainConfig.parser("prog")
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name
    assert {"--no-online-probe", "--no-flip"} <= flags and "--no-resume" not in flags  # switches stay switches
    cfg = TrainConfig.from_argv(["--encoder", "e", "--crop-scale", "0.3", "1", "--encoder-option", "a=1",
                                 "--encoder-option", "b='x'", "--no-online-probe", "--resume", "--limit", "5"])
    assert cfg.crop_scale == (0.3, 1.0) and cfg.encoder_kwargs() == {"a": 1, "b": "x"}
    assert cfg.online_probe is False and cfg.resume is True and cfg.limit == 5
    assert TrainConfig.from_argv(["--encoder", "e"]) == TrainConfig(encoder="e")  # argparse adds nothing


def test_help_shows_every_default_and_the_groups():
    text = " ".join(TrainConfig.parser("prog").format_help().split())
    for fragment in ("(default: 0.001)", "(default: 64)", "(default: cosine)", "(default: True)",
                     "(default: 50)", "data:", "optimisation:", "evaluation:", "{cosine,constant}"):
        assert fragment in text, fragment


def test_subclass_options_and_overridden_defaults():
    @dataclasses.dataclass(frozen=True)
    class MyConfig(TrainConfig):
        name = "mine"
        lr: float = override("lr", 5e-4)
        width: int = option(8, "hidden width", check=lambda name, v: v if v > 0 else (_ for _ in ()).throw(
            ValueError(f"{name} must be positive")))

    cfg = MyConfig.from_argv(["--encoder", "e", "--width", "3"])
    assert (cfg.lr, cfg.width) == (5e-4, 3)
    text = " ".join(MyConfig.parser("p").format_help().split())
    assert "mine options:" in text and "(default: 0.0005)" in text and "peak Adam learning rate" in text
    with pytest.raises(ValueError, match=r"width \(--width\) must be positive"):
        MyConfig(encoder="e", width=0)
    with pytest.raises(ValueError, match="has no option 'lrr'"):
        override("lrr", 1.0)
