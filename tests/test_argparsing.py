"""The one generator of the command lines: dataclass fields -> flags -> an instance, and back."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Literal, Mapping

import pytest

from mi_estimators import cli
from mi_estimators.argparsing import add_options, field_docs, from_namespace, given_options
from mi_estimators.options import check_known, parse_options


@dataclasses.dataclass(frozen=True)
class Opts:
    """A config with one field of every kind the generator reads."""

    #: the input file
    path: str
    #: an optional second file
    other: str | None = dataclasses.field(default=None, metadata={"positional": True})
    #: training steps
    steps: int = 100
    rate: float | None = 0.5  #: a rate, or none
    mode: Literal["fast", "slow"] = "fast"
    names: tuple[str, ...] = ("a",)
    pair: tuple[float, float] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    anything: Any = "x"
    flag: bool = True
    progress: bool | None = None


def _parse(argv, **kwargs):
    parser = argparse.ArgumentParser(prog="t")
    add_options(parser, Opts, **kwargs)
    return parser, parser.parse_args(argv)


def test_every_field_kind_round_trips():
    _, ns = _parse(["f", "g", "--steps", "3", "--rate", "none", "--mode", "slow", "--names", "b", "c", "--names", "d",
                    "--pair", "1", "2.5", "--extra", "clip=20", "name=x", "--anything", "y", "--no-flag", "--progress"])
    assert from_namespace(Opts, ns) == Opts("f", "g", 3, None, "slow", ("b", "c", "d"), (1.0, 2.5),
                                            {"clip": 20, "name": "x"}, "y", False, True)
    _, ns = _parse(["f"])
    assert from_namespace(Opts, ns) == Opts("f")  # nothing given: the field defaults, argparse adds nothing


def test_a_repeated_tuple_flag_replaces_the_default_once_then_adds():
    _, ns = _parse(["f", "--names"])
    assert from_namespace(Opts, ns).names == ()
    _, ns = _parse(["f", "--names", "b", "--names", "c"])
    assert from_namespace(Opts, ns).names == ("b", "c")


def test_suppressed_defaults_leave_only_what_was_given_to_lay_over_a_preset():
    _, ns = _parse(["f", "--steps", "7"], suppress_defaults=True)
    assert given_options(Opts, ns) == {"path": "f", "steps": 7}
    preset = Opts("p", steps=1, mode="slow")
    assert from_namespace(Opts, ns, preset) == dataclasses.replace(preset, path="f", steps=7)


def test_help_comes_from_comments_with_each_default_once():
    parser, _ = _parse(["f"], helps={"steps": "optimiser steps"})
    text = " ".join(parser.format_help().split())
    assert "--steps STEPS optimiser steps (default: 100)" in text  # the caller's help wins
    assert "a rate, or none (default: 0.5)" in text and "{fast,slow}" in text and "(default: a)" in text
    assert text.count("(default: 100)") == 1 and "path the input file" in text
    assert field_docs(Opts)["rate"] == "a rate, or none"


@pytest.mark.parametrize("argv", [["f", "--steps", "x"], ["f", "--mode", "medium"], ["f", "--extra", "novalue"],
                                  ["f", "--pair", "1"]])
def test_bad_values_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as err:
        _parse(argv)
    assert err.value.code == 2 and "error:" in capsys.readouterr().err


def test_unknown_keys_name_the_closest_or_list_all():
    with pytest.raises(ValueError, match=r"^unknown option 'stpes'; did you mean 'steps'\?$"):
        check_known(["steps", "stpes"], ["steps", "rate"])
    with pytest.raises(ValueError, match="the options are steps, rate"):
        check_known({"zzz": 1}, ["steps", "rate"], "unknown option")
    assert parse_options(["a=1", "b=[1, 2]", "c=word"]) == {"a": 1, "b": [1, 2], "c": "word"}


def test_estimate_flags_reach_estimate_as_the_options_given(tmp_path, monkeypatch, capsys):
    """Only the flags given are passed on (estimate() applies its own defaults to the rest), typed."""
    import numpy as np

    import mi_estimators.estimation as estimation

    np.save(tmp_path / "x.npy", np.arange(6.0).reshape(3, 2))
    seen = {}

    def spy(x, y, **options):
        seen.update(options, shapes=(x.shape, y.shape))
        raise ValueError("stop here")

    monkeypatch.setattr(estimation, "estimate", spy)
    argv = ["estimate", str(tmp_path / "x.npy"), "--x-cols", "0", "--y-cols", "1", "--bound-options=clip=20",
            "--no-copula", "--ema", "none", "--steps", "40", "--standardize", "zscore", "--seed", "3"]
    assert cli.main(argv) == 2 and "stop here" in capsys.readouterr().err
    assert seen == {"bound_options": {"clip": 20}, "copula": False, "ema": None, "steps": 40, "standardize": "zscore",
                    "seed": 3, "shapes": ((3, 1), (3, 1))}


def test_estimate_help_lists_every_estimate_option_with_its_default(capsys):
    from mi_estimators.estimation import EstimateOptions

    with pytest.raises(SystemExit):
        cli.main(["estimate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(EstimateOptions):
        assert "--" + f.name.replace("_", "-") in text, f.name
    assert "(none: 2000 up to 20,000 rows" in text and "--no-copula" in text and "--no-canonical" in text
