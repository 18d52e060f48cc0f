"""Checkpoints are read with torch's safe loader: a crafted file cannot run code, whether it is
resumed, evaluated or probed; what the trainer stores survives the safe loader exactly."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mi_estimators.training import (CheckpointError, capture_rng, load_checkpoint, restore_rng, save_atomic,
                                    save_checkpoint)
from mi_estimators.training.checkpoint import FORMAT

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


class _Payload:
    """Unpickling this creates a file (as a crafted checkpoint's code would)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"format": FORMAT, "model": _Payload(marker), "step": 1, "epoch": 1}, path)
    return path


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_random_states_survive_the_safe_loader(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # a cached Gaussian in numpy's state
    save_checkpoint({"rng": [capture_rng()]}, tmp_path / "c.pt")
    expected = _draws()
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    assert _draws() == expected


def test_crafted_checkpoint_is_refused_in_process(tmp_path):
    marker = tmp_path / "created"
    evil = _crafted(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError, match="not a checkpoint this library wrote or trusts.*nothing in it was run"):
        load_checkpoint(evil)
    assert not marker.exists()
    # the file is what it claims: the unsafe loader would have run its code
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_a_file_without_our_marker_is_refused(tmp_path):
    save_atomic({"model": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no 'mi-estimators-checkpoint/2' marker"):
        load_checkpoint(tmp_path / "other.pt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mi_estimators.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("mode", ["--resume", "--eval-only"])
def test_crafted_checkpoint_is_refused_by_the_command_line(tmp_path, mode):
    marker = tmp_path / "created"
    (tmp_path / "run").mkdir()
    _crafted(tmp_path / "run" / "checkpoint.pt", marker)
    proc = _cli("train", "dim", "--dataset", "digits", "--image-size", "28", "--out", str(tmp_path / "run"), mode)
    if "unknown trainer" in proc.stderr:
        pytest.skip("the dim plugin is not installed")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is not a checkpoint this library wrote or trusts" in proc.stderr
    assert not marker.exists()


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST is not installed at {FASHION}")
def test_probe_script_refuses_a_crafted_checkpoint(tmp_path):
    marker = tmp_path / "created"
    evil = _crafted(tmp_path / "checkpoint.pt", marker)
    proc = subprocess.run([sys.executable, str(ROOT / "plugins/dim/benchmarks/probe_features.py"), "--limit", "20",
                           "--test-limit", "20", "--checkpoint", str(evil)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "not a checkpoint this library wrote or trusts" in proc.stderr and not marker.exists()
