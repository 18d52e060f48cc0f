"""The loop's collaborators on their own: progress bars only on a terminal, the stop flag, the
epoch meter against naive sums, and a trainer whose state is all declared before it runs."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mi_estimators as mie
from mi_estimators.training import TrainConfig
from mi_estimators.training.distributed import DistInfo
from mi_estimators.training.interrupt import StopFlag
from mi_estimators.training.loop import progress_wanted
from mi_estimators.training.meter import Meter

TOY = Path(__file__).with_name("toy_trainer.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BAR = "epoch 1/2"  # the first epoch's progress bar


@pytest.fixture(scope="module")
def toy():
    spec = importlib.util.spec_from_file_location("toy_trainer", TOY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    mie.unregister("toy", kind="encoders")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("flags, expected", [({}, None), ({"progress": True}, True),
                                             ({"progress": False}, False)])
def test_progress_is_on_a_terminal_unless_told(monkeypatch, terminal, flags, expected):
    monkeypatch.setattr(sys, "stderr", _Terminal() if terminal else io.StringIO())
    wanted = progress_wanted(TrainConfig(encoder="any", **flags))
    assert wanted is (terminal if expected is None else expected)


def test_progress_options_are_checked():
    assert TrainConfig.from_argv(["--progress"]).progress is True
    assert TrainConfig.from_argv([]).progress is None
    assert TrainConfig.from_argv(["--no-progress"]).progress is False
    assert TrainConfig.from_argv(["--progress", "--no-progress"]).progress is False   # the last one given wins
    with pytest.raises(ValueError, match=r"progress \(--progress\) must be True, False or None"):
        TrainConfig(progress="yes")


def test_a_log_file_gets_the_epochs_and_a_terminal_the_bars(tmp_path):
    """The same run with stderr to a file (no bars, one line per epoch) and to a pseudo-terminal."""
    fcntl, pty, termios = (pytest.importorskip(m) for m in ("fcntl", "pty", "termios"))  # POSIX
    argv = [sys.executable, str(TOY), "run"]
    options = ["--epochs", "2", "--probe-iters", "5"]
    log = tmp_path / "stderr.log"
    with log.open("w") as fh:
        to_file = subprocess.Popen([*argv, str(tmp_path / "a"), *options], stderr=fh, env=ENV)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # (a 0-column one draws nothing)
    to_tty = subprocess.Popen([*argv, str(tmp_path / "b"), *options], stderr=follower, env=ENV)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the child exits
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert to_file.wait(timeout=300) == 0 and to_tty.wait(timeout=300) == 0
    written = log.read_text()
    assert BAR not in written and "\r" not in written and "probe:" not in written
    assert sum(line.startswith('{"epoch": ') for line in written.splitlines()) == 2
    assert BAR in shown.decode(errors="replace")


def test_stop_flag_first_signal_is_recorded_the_second_stops_now():
    flag, before = StopFlag(), signal.getsignal(signal.SIGTERM)
    with flag.catching():
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.raised and flag.signum == signal.SIGTERM and flag.exit_code == 128 + signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back
    assert StopFlag().exit_code == 128 + signal.SIGTERM  # stopped by code, not a signal


def test_meter_agrees_with_naive_sums():
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(5, generator=g, dtype=torch.float64)
    extra = torch.rand(5, generator=g, dtype=torch.float64)
    meter = Meter(torch.device("cpu"), DistInfo())
    for i in range(5):
        meter.add(losses[i], {"loss": losses[i], "extra": extra[i], "host": float(i)}, torch.tensor(i), images=4)
    point = meter.sync(stop=False)
    assert point.diverged is None and not point.stopping
    assert point.loss == pytest.approx(float(losses.mean()), rel=1e-12)
    record = meter.record(epoch=1, step=5, online_probe=True)
    assert record["epoch"] == 1 and record["steps"] == 5 and record["images"] == 20
    assert record["loss"] == pytest.approx(float(losses.mean()), rel=1e-12)
    assert record["extra"] == pytest.approx(float(extra.mean()), rel=1e-12) and record["host"] == 2.0
    assert record["online_probe_train_acc"] == (0 + 1 + 2 + 3 + 4) / 20
    # continued from a mid-epoch checkpoint's read(): the same record as one meter throughout
    again = Meter(torch.device("cpu"), DistInfo(), saved=meter.read())
    assert again.record(epoch=1, step=5, online_probe=True)["loss"] == record["loss"]
    meter.add(torch.tensor(float("nan"), dtype=torch.float64), {"loss": torch.tensor(0.0)}, torch.tensor(0), 4)
    assert meter.sync(stop=True).diverged == "nan" and meter.sync(stop=True).stopping


def test_fit_adds_no_attribute_that_init_did_not_declare(toy, tmp_path):
    trainer = toy.ToyTrainer(toy.ToyTrainer.parse(["--out", str(tmp_path), "--epochs", "1", "--no-progress",
                                                   "--probe-iters", "5"]))
    declared = set(vars(trainer))
    assert trainer.built is None and trainer.step == 0
    trainer.fit(train=toy.toy_data(), test=toy.toy_data(48, 1))
    assert set(vars(trainer)) == declared
    built = trainer.built
    assert built.model is built.module and built.module.objective.encoder is built.encoder  # one process: no DDP
    assert trainer.step == len(built.batches) == 6 and built.scheduler.last_epoch == 6
