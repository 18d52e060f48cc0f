"""The command line dispatches `train NAME` to whatever trainer the registry holds under NAME."""

from __future__ import annotations

import json

import pytest

import mi_estimators as mie
from mi_estimators.cli import main


class EchoTrainer:
    """Toy trainer: echoes its options as metrics."""

    @staticmethod
    def add_arguments(parser):
        parser.add_argument("--epochs", type=int, required=True)

    @staticmethod
    def run(args):
        return {"epochs": args.epochs, "accuracy": 0.5}


@pytest.fixture
def echo_trainer():
    mie.register("echo", EchoTrainer, kind="trainers")
    yield
    mie.unregister("echo", kind="trainers")


def test_train_dispatches_to_registered_trainer(echo_trainer, capsys):
    assert main(["train", "echo", "--epochs", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == {"epochs": 3, "accuracy": 0.5}


def test_train_parser_rejects_unknown_options(echo_trainer, capsys):
    with pytest.raises(SystemExit) as err:
        main(["train", "echo", "--epochs", "3", "--bogus", "1"])
    assert err.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_train_unknown_trainer_is_one_line_naming_closest(echo_trainer, capsys):
    assert main(["train", "ecko"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mi-estimators: error: unknown trainer 'ecko'; did you mean 'echo'?")
    assert "Traceback" not in err


def test_train_without_name_lists_trainers(echo_trainer, capsys):
    assert main(["train"]) == 2
    assert "echo" in capsys.readouterr().out


def test_list_into_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m mi_estimators.cli list | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "bounds:" and "Traceback" not in proc.stderr, proc.stderr
