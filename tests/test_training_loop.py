"""The shared training loop: loss goes down, exact resume after SIGINT and SIGKILL, NaN stop,
third-party encoders, schedules, probes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mi_estimators as mie
from mi_estimators.training import (CHECKPOINT_NAME, ImageData, TrainingDivergedError, knn_accuracy,
                                    linear_probe, load_checkpoint, parse_options)
from mi_estimators.testing.distributed import gloo_available, run_on_ranks
from mi_estimators.training.loop import lr_lambda

TOY = Path(__file__).with_name("toy_trainer.py")  # a trainer plugin; a subprocess runs it too


@pytest.fixture(scope="module")
def toy():
    spec = importlib.util.spec_from_file_location("toy_trainer", TOY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.path = TOY
    yield mod
    mie.unregister("toy", kind="encoders")


def _run(toy, out, *extra, callbacks=(), trainer=None):
    trainer = trainer or toy.ToyTrainer
    args = trainer.parse(["--out", str(out), "--epochs", "3", "--no-progress", *extra])
    return trainer.run(args, train=toy.data if hasattr(toy, "data") else toy.toy_data(),
                       test=toy.toy_data(48, 1), callbacks=callbacks)


def _params(out):
    return load_checkpoint(out / CHECKPOINT_NAME)["model"]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_loss_decreases_and_metrics_written(toy, tmp_path):
    m = _run(toy, tmp_path, "--epochs", "4", "--knn", "3")
    losses = [h["loss"] for h in m["history"]]
    assert losses[-1] < losses[0] - 0.05, losses
    assert m["epochs"] == 4 and m["steps"] == 4 * (96 // 16)
    assert 0.0 <= m["linear_probe_test_acc"] <= 1.0 and "knn3_test_acc" in m
    written = (tmp_path / "metrics.json").read_text()
    assert '"linear_probe_test_acc"' in written and '"config"' in written


def test_sigint_mid_epoch_then_resume_is_identical(toy, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    _run(toy, straight)

    def interrupt(trainer):  # 6 steps per epoch: stop in the middle of epoch 2
        if trainer.step == 8:  # seen by the next step, which completes; then the run stops
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(SystemExit):
        _run(toy, stopped, callbacks=[interrupt])
    state = load_checkpoint(stopped / CHECKPOINT_NAME)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 3, 9)
    m = _run(toy, stopped, "--resume")
    assert m["steps"] == 18
    _assert_same(_params(straight), _params(stopped))
    # the wall time counts the whole run: the epochs before the interruption come from the checkpoint
    assert len(m["history"]) == 3 and m["train_wall_s"] == round(sum(h["wall_s"] for h in m["history"]), 2)


def test_sigkill_mid_epoch_then_resume_loses_only_that_epoch(toy, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _run(toy, straight)
    proc = subprocess.run([sys.executable, str(toy.path), str(killed), "9"], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    state = load_checkpoint(killed / CHECKPOINT_NAME)
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (1, 6, 0)  # end of epoch 1
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]
    m = _run(toy, killed, "--resume")
    assert m["steps"] == 18
    _assert_same(_params(straight), _params(killed))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(toy, tmp_path):
    class Poisoned(toy.ToyTrainer):
        poison_at = 9  # epoch 2, third step

    # found at the next sync point (the epoch's end: log_every 50 > 6 steps), before anything is saved
    with pytest.raises(TrainingDivergedError,
                       match=r"loss is nan at epoch 2, between steps 7 and 12.*last good checkpoint.*--lr"):
        _run(toy, tmp_path, trainer=Poisoned)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (state["epoch"], state["step"]) == (1, 6)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_sync_interval_does_not_change_the_run(toy, tmp_path):
    """Reading the device every step or every 50 steps: the same weights, the same history."""
    every, rarely = tmp_path / "every", tmp_path / "rarely"
    a = _run(toy, every, "--log-every", "1")
    b = _run(toy, rarely, "--log-every", "50")
    _assert_same(_params(every), _params(rarely))
    strip = [{k: v for k, v in h.items() if k not in ("wall_s", "images_per_s")} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k not in ("wall_s", "images_per_s")} for h in b["history"]]


def test_no_host_read_inside_a_step(toy, tmp_path, monkeypatch):
    """The kit's step never reads a tensor on the host (float, int, bool, item, tolist): it syncs only at
    the sync points. (Reads inside torch itself, such as Adam's CPU step counter, are not the kit's.)"""
    import inspect
    from pathlib import Path

    from mi_estimators.training import Trainer

    kit = str(Path(inspect.getfile(Trainer)).parent)
    reads, inside = [], [False]

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if inside[0] and (caller.startswith(kit) or caller == str(toy.path)):
                reads.append((name, caller, sys._getframe(1).f_lineno))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    for name in ("__float__", "__int__", "__bool__", "__index__", "item", "tolist"):
        spy(name)
    step = Trainer._train_step

    def traced(self, *args):
        inside[0] = True
        try:
            return step(self, *args)
        finally:
            inside[0] = False

    monkeypatch.setattr(Trainer, "_train_step", traced)
    m = _run(toy, tmp_path, "--epochs", "1")
    assert m["steps"] == 6 and reads == []


def test_fit_leaves_the_callers_random_streams_alone(toy, tmp_path):
    import random

    import numpy as np

    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    _run(toy, tmp_path, "--epochs", "1", "--probe-iters", "5")
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def _ddp_worker(rank, world, toy_path, out):
    """One torchrun-like rank: a stop flag raised on rank 1 only stops both ranks at the same sync
    point; the run then resumes on both ranks to the end."""
    spec = importlib.util.spec_from_file_location("toy_trainer", toy_path)
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)

    def stop_on_rank_1(trainer):
        if trainer.step == 3 and trainer.dist.rank == 1:
            trainer._stop = signal.SIGTERM

    argv = ["--out", out, "--epochs", "2", "--no-progress", "--log-every", "2", "--device", "cpu"]
    codes = []
    try:
        toy.ToyTrainer.run(toy.ToyTrainer.parse(argv), train=toy.toy_data(), test=toy.toy_data(48, 1),
                           callbacks=[stop_on_rank_1])
    except SystemExit as exc:
        codes.append(exc.code)
    stopped = load_checkpoint(os.path.join(out, CHECKPOINT_NAME))
    m = toy.ToyTrainer.run(toy.ToyTrainer.parse(argv + ["--resume"]), train=toy.toy_data(), test=toy.toy_data(48, 1))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"codes": codes, "stopped_step": stopped["step"], "steps": m.get("steps"),
                   "world": m.get("world_size")}, fh)


@pytest.mark.skipif(not gloo_available(), reason="needs torch.distributed with gloo")
def test_two_ranks_stop_together_at_a_sync_point_and_resume(toy, tmp_path):
    run_on_ranks(_ddp_worker, str(toy.path), str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # 3 steps per epoch and rank; the flag set after step 3 is all-reduced at the next sync (step 4)
    assert [r["codes"] for r in ranks] == [[128 + signal.SIGTERM]] * 2
    assert ranks[0]["stopped_step"] == ranks[1]["stopped_step"] == 4
    assert ranks[0]["steps"] == 6 and ranks[0]["world"] == 2 and ranks[1]["steps"] is None  # rank 0 reports


def test_existing_run_needs_resume(toy, tmp_path):
    _run(toy, tmp_path, "--epochs", "1")
    with pytest.raises(ValueError, match="--resume"):
        _run(toy, tmp_path, "--epochs", "1")


def test_epochs_zero_probes_initialisation_and_eval_only(toy, tmp_path):
    m = _run(toy, tmp_path / "init", "--epochs", "0")
    assert m["steps"] == 0 and "linear_probe_test_acc" in m
    _run(toy, tmp_path / "trained", "--epochs", "1")
    m = _run(toy, tmp_path / "trained", "--eval-only")
    assert m["steps"] == 6 and "linear_probe_test_acc" in m
    m = _run(toy, tmp_path / "trained", "--eval-only", "--probe-features", "global,local")
    assert m["probe_dim"] == 16 + 8 * 4 * 4
    assert '"global,local"' in (tmp_path / "trained" / "eval-metrics.json").read_text()
    assert '"probe_features": "global"' in (tmp_path / "trained" / "metrics.json").read_text()
    with pytest.raises(ValueError, match="other --probe-features"):
        _run(toy, tmp_path / "trained", "--resume", "--probe-features", "local")


def test_third_party_encoder_by_name(toy, tmp_path):
    calls = []

    def factory(in_channels, image_size, width=4):
        calls.append((in_channels, image_size, width))
        return toy.ToyEncoder(in_channels, image_size, width=width)

    mie.register("third-party-net", factory, kind="encoders")
    try:
        _run(toy, tmp_path, "--encoder", "third-party-net", "--encoder-option", "width=6", "--epochs", "1")
    finally:
        mie.unregister("third-party-net", kind="encoders")
    assert calls == [(1, 8, 6)]


def test_unknown_encoder_and_bad_probe_key(toy, tmp_path):
    with pytest.raises(mie.UnknownNameError, match="encoder 'tyo'.*did you mean 'toy'"):
        _run(toy, tmp_path / "a", "--encoder", "tyo")
    with pytest.raises(ValueError, match="--probe-features fc.*returns only"):
        _run(toy, tmp_path / "b", "--probe-features", "fc")


def test_lr_schedule_warmup_then_cosine():
    f = lr_lambda(10, 110, "cosine")
    assert [round(f(s), 3) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-12)
    assert lr_lambda(0, 100, "constant")(57) == 1.0


def test_parse_options():
    assert parse_options(["clip=20", "name=foo", "flag=True", "scale=0.5"]) == {
        "clip": 20, "name": "foo", "flag": True, "scale": 0.5}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["clip"])


def test_linear_probe_agrees_with_sklearn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(0)
    y = torch.arange(600) % 4
    x = torch.randn(600, 10, generator=g) + 1.5 * torch.nn.functional.one_hot(y, 10).float()
    ours = linear_probe(x[:400], y[:400], x[400:], y[400:], weight_decay=1e-3)
    clf = sklearn.LogisticRegression(C=1.0 / (1e-3 * 400), max_iter=2000).fit(
        ((x[:400] - x[:400].mean(0)) / x[:400].std(0)).numpy(), y[:400].numpy())
    theirs = clf.score(((x[400:] - x[:400].mean(0)) / x[:400].std(0)).numpy(), y[400:].numpy())
    assert abs(ours - theirs) <= 0.02 and ours > 0.5


def test_probe_progress_follows_the_progress_setting(toy, tmp_path, capsys):
    _run(toy, tmp_path / "quiet", "--epochs", "0", "--probe-iters", "5")
    assert "probe:" not in capsys.readouterr().err
    args = toy.ToyTrainer.parse(["--out", str(tmp_path / "shown"), "--epochs", "0", "--probe-iters", "5",
                                 "--progress"])  # (captured stderr is not a terminal: bars only when asked)
    toy.ToyTrainer.run(args, train=toy.toy_data(), test=toy.toy_data(48, 1))
    err = capsys.readouterr().err
    assert "probe: features" in err and "probe: L-BFGS evaluations" in err


def test_knn_matches_naive_loop():
    g = torch.Generator().manual_seed(1)
    tr, te = torch.randn(50, 3, generator=g), torch.randn(20, 3, generator=g)
    ytr, yte = torch.randint(0, 3, (50,), generator=g), torch.randint(0, 3, (20,), generator=g)
    correct = 0
    for i in range(20):
        sims = [float(torch.nn.functional.cosine_similarity(te[i], tr[j], dim=0)) for j in range(50)]
        nearest = sorted(range(50), key=lambda j: -sims[j])[:5]
        votes = torch.bincount(ytr[nearest], minlength=3)
        correct += int(votes.argmax() == yte[i])
    assert knn_accuracy(tr, ytr, te, yte, k=5, chunk=7) == pytest.approx(correct / 20)


def test_in_memory_data_validation():
    with pytest.raises(ValueError, match="labels"):
        ImageData(torch.zeros(4, 1, 8, 8), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ImageData(torch.zeros(4, 8), torch.zeros(4))


def test_default_inputs_follow_the_shared_augmentation_options():
    from mi_estimators.training import Trainer

    x = torch.rand(32, 1, 8, 8)
    plain = Trainer(Trainer.parse(["--encoder", "any"]))
    plain.mean, plain.std = torch.zeros(1), torch.ones(1)
    assert torch.equal(plain.make_inputs(x), x)  # every augmentation is off by default
    shifted = Trainer(Trainer.parse(["--encoder", "any", "--translate", "2", "--flip"]))
    shifted.mean, shifted.std = torch.full((1,), 0.5), torch.full((1,), 0.25)
    out = shifted.make_inputs(x)
    assert out.shape == x.shape and not torch.allclose(out, (x - 0.5) / 0.25)
