"""Fault injection: trainers under kills, damaged checkpoints, a read-only or full disk and a
second run on the same folder. Every case ends in a one-line message (never a traceback) and a
clear exit code, and nothing is lost beyond the epoch in flight: a resumed run ends with exactly
the weights of an uninterrupted one.

Runs go through the command line (`mi-estimators train toy ...`, the toy trainer of
``toy_trainer.py`` on a tiny IDX dataset: 96 images of 8x8, 6 steps per epoch, 3 epochs); the
faults that need a process to die or a second process run in subprocesses
(``toy_trainer.py cli FAULT ...``), all started at once to keep the suite short.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators.cli import main as cli_main
from mi_estimators.training import CheckpointError, load_checkpoint

TOY = Path(__file__).with_name("toy_trainer.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy trainer registered for the in-process command line, and its data as IDX files."""
    spec = importlib.util.spec_from_file_location("toy_trainer", TOY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mie.register("toy", mod.ToyTrainer, kind="trainers", overwrite=True)
    data = tmp_path_factory.mktemp("idx")
    for prefix, d in (("train", mod.toy_data()), ("t10k", mod.toy_data(48, 1))):
        _write_idx(data / f"{prefix}-images-idx3-ubyte", d.images[:, 0].numpy())
        _write_idx(data / f"{prefix}-labels-idx1-ubyte", d.labels.numpy().astype(np.uint8))
    mod.args = ["--dataset", "idx", "--data-dir", str(data), "--epochs", "3", "--no-progress", "--probe-iters", "20"]
    yield mod
    mie.unregister("toy", kind="trainers")
    mie.unregister("toy", kind="encoders")


def _write_idx(path: Path, array: np.ndarray) -> None:
    dims = b"".join(struct.pack(">i", d) for d in array.shape)
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + dims + np.ascontiguousarray(array, np.uint8).tobytes())


def _cli(toy, capsys, out: Path, *extra: str) -> tuple[int, str]:
    """``mi-estimators train toy`` in this process: (exit code, stderr)."""
    capsys.readouterr()
    try:
        code = cli_main(["train", "toy", *toy.args, "--out", str(out), *extra])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def _error(err: str) -> str:
    """The one-line error a failing command ends with (log lines may come before it)."""
    last = err.strip().splitlines()[-1]
    assert last.startswith("mi-estimators: error: ") and sum("error:" in ln for ln in err.splitlines()) == 1, err
    return last


def _child(toy, fault: str, out: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TOY), "cli", fault, *toy.args, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, **popen)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode, err


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = (load_checkpoint(p / "checkpoint.pt")["model"] for p in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _step(out: Path) -> int | None:
    """The step of the checkpoint a --resume would read (latest, else previous), None if none."""
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        try:
            return load_checkpoint(out / name)["step"]
        except (FileNotFoundError, CheckpointError):
            pass
    return None


#: SIGKILL at five points -> the checkpoint --resume finds (its step; 6 per epoch), what it says
KILLS = {
    "kill-step:3": (None, "no checkpoint in"),  # epoch 1: nothing saved yet
    "kill-step:9": (6, "resumed from"),  # mid epoch 2
    "kill-replace:2": (6, "resumed from"),  # saving epoch 2: new file written, not yet moved in
    "kill-replace:3": (6, "is missing; using the previous one"),  # saving epoch 2: latest moved to .prev
    "kill-probe": (18, "resumed from"),  # the final linear probe
}


def test_killed_runs_resume_to_the_uninterrupted_result(toy, tmp_path, capsys):
    procs = {fault: _child(toy, fault, tmp_path / fault.replace(":", "-")) for fault in KILLS}
    procs["term-step:8"] = _child(toy, "term-step:8", tmp_path / "term")
    assert _cli(toy, capsys, tmp_path / "straight")[0] == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    for fault, (step, resumed) in KILLS.items():
        out = tmp_path / fault.replace(":", "-")
        assert _finish(procs[fault])[0] == -signal.SIGKILL, fault
        assert _step(out) == step, fault  # nothing lost but the epoch in flight
        code, err = _cli(toy, capsys, out, "--resume")
        assert resumed in err, (fault, err)
        if step is None:  # the dead run's lock is taken over; no checkpoint: say so, then start anew
            assert "warning: took over the lock of a run that is no longer running (process" in err
            assert code == 2 and "run without --resume" in _error(err)
            code, err = _cli(toy, capsys, out)
        assert code == 0, (fault, err)
        assert _same_weights(out, tmp_path / "straight"), fault
        assert not list(out.glob(".*.tmp")), fault  # a killed write's temporary file is cleaned up
    # SIGTERM: an exact mid-epoch checkpoint, numbered like the resume message
    code, err = _finish(procs["term-step:8"])
    assert code == 128 + signal.SIGTERM and "interrupted in epoch 2 of 3, after step 8 (batch 2 of 6)" in err
    code, err = _cli(toy, capsys, tmp_path / "term", "--resume")
    assert code == 0 and "in epoch 2 of 3, after step 8 (batch 2 of 6)" in err
    assert _same_weights(tmp_path / "term", tmp_path / "straight")
    metrics = load_checkpoint(tmp_path / "term" / "checkpoint.pt")["history"]
    assert [h["loss"] for h in metrics] == [h["loss"] for h in straight["history"]]  # the epoch's sums kept


def _flip_a_tensor_bit(path: Path) -> None:
    """Flip one bit in the largest tensor record of a checkpoint (torch itself does not notice)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    raw[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_damaged_checkpoints_fall_back_to_the_previous_one(toy, tmp_path, capsys):
    straight = tmp_path / "straight"
    assert _cli(toy, capsys, straight)[0] == 0  # checkpoint.pt (epoch 3) and checkpoint.prev.pt (epoch 2)
    cases = {"truncated": lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
             "bit-flipped": _flip_a_tensor_bit}
    for name, damage in cases.items():
        out = tmp_path / name
        shutil.copytree(straight, out)
        damage(out / "checkpoint.pt")
        if name == "bit-flipped":  # torch reads it without complaint; the digest does not match
            torch.load(out / "checkpoint.pt", weights_only=True)
            with pytest.raises(CheckpointError, match="damaged: its content does not match the SHA-256 digest"):
                load_checkpoint(out / "checkpoint.pt")
        code, err = _cli(toy, capsys, out, "--eval-only")
        assert code == 0 and "using the previous one" in err and (out / "checkpoint.pt").exists()
        code, err = _cli(toy, capsys, out, "--resume")  # from epoch 2: epoch 3 again
        assert code == 0 and "warning: the latest checkpoint" in err and "using the previous one" in err
        assert (out / "checkpoint.pt.unreadable").exists() and _same_weights(out, straight), name
    both = tmp_path / "both"
    shutil.copytree(straight, both)
    for f in ("checkpoint.pt", "checkpoint.prev.pt"):
        (both / f).write_bytes(b"\0" * 100)
    code, err = _cli(toy, capsys, both, "--resume")
    assert code == 2 and "previous checkpoint is unusable too" in _error(err)


def _full_disk(limit: int):
    def set_limit():  # in the child: files may not grow past `limit` bytes, and writes fail (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_read_only_and_full_disk_and_a_second_run(toy, tmp_path, capsys, monkeypatch):
    # a second run on the same folder (the first one waits before its first step)
    busy = tmp_path / "busy"
    first = _child(toy, f"wait:{tmp_path / 'go'}", busy)
    for _ in range(2400):  # until it holds the lock (a loaded machine may take a while to start it)
        if (busy / "run.lock").exists() and (busy / "run.lock").read_text():
            break
        time.sleep(0.05)
    code, err = _cli(toy, capsys, busy)
    assert code == 2 and f"in use by another run (process {first.pid} on" in _error(err)
    (tmp_path / "go").touch()
    # a full disk while saving epoch 2: the first epoch's checkpoint stays, and the run continues later
    full = tmp_path / "full"
    stopper = toy.ToyTrainer.parse([*toy.args, "--out", str(full)])

    def stop_in_epoch_2(trainer):
        if trainer.step == 8:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        toy.ToyTrainer(stopper).fit(callbacks=[stop_in_epoch_2])
    size = (full / "checkpoint.pt").stat().st_size
    code, err = _finish(_child(toy, "none", full, "--resume", preexec_fn=_full_disk(size // 2)))
    assert code == 2 and "could not write the checkpoint" in _error(err) and "earlier checkpoints are intact" in err
    assert load_checkpoint(full / "checkpoint.pt")["step"] == 6 and not list(full.glob(".*.tmp"))
    assert _cli(toy, capsys, full, "--resume")[0] == 0
    assert _finish(first)[0] == 0 and _same_weights(busy, full)  # both equal the uninterrupted run
    # a read-only --out (a path under a regular file: read-only even for root), before any data is read
    monkeypatch.setattr("mi_estimators.training.loop.load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    (tmp_path / "file").write_text("")
    code, err = _cli(toy, capsys, tmp_path / "file" / "out")
    assert code == 2 and "cannot write to --out" in _error(err)
    if os.geteuid() != 0:  # chmod does not stop root
        (tmp_path / "ro").mkdir(mode=0o555)
        code, err = _cli(toy, capsys, tmp_path / "ro")
        assert code == 2 and "cannot write to --out" in _error(err)


def test_unexpected_errors_and_a_second_ctrl_c_are_one_line(toy, tmp_path, capsys, monkeypatch):
    class Broken(toy.ToyTrainer):
        """A trainer whose objective fails the way torch does (several lines)."""

        def build_objective(self, encoder, shapes):
            def fail(views):
                raise RuntimeError("shapes do not match\n  (a long explanation)\n  on several lines")
            obj = toy.Objective(encoder)
            obj.forward = fail
            return obj

    mie.register("toy-broken", Broken, kind="trainers", overwrite=True)
    try:
        code = cli_main(["train", "toy-broken", *toy.args, "--out", str(tmp_path / "a")])
        err = capsys.readouterr().err
        assert code == 2 and "training failed (RuntimeError: shapes do not match); set MI_ESTIMATORS_TRACEBACK=1" \
            in _error(err) and "Traceback" not in err
        monkeypatch.setattr(toy.ToyTrainer, "_train_step", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
        assert cli_main(["train", "toy", *toy.args, "--out", str(tmp_path / "b")]) == 130
        assert capsys.readouterr().err.strip().splitlines()[-1] == "mi-estimators: interrupted"
    finally:
        mie.unregister("toy-broken", kind="trainers")
