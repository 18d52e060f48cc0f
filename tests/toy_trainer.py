"""A complete trainer plugin in a few lines (two-view InfoNCE on a toy encoder), for the trainer
tests; also run as a script by the tests that need a process to kill:

    python toy_trainer.py OUT KILL_STEP          # in-memory data, SIGKILL after step KILL_STEP
    python toy_trainer.py run OUT ARGS...        # in-memory data, the options ARGS
    python toy_trainer.py cli FAULT ARGS...      # `mi-estimators train toy ARGS...` with a fault

FAULT (the fault-injection suite): ``none``; ``kill-step:N`` / ``term-step:N`` (SIGKILL / SIGTERM
after step N); ``kill-replace:N`` (SIGKILL just before the N-th ``os.replace`` of the run, i.e.
inside a checkpoint write); ``kill-probe`` (SIGKILL when the final probe starts); ``wait:PATH``
(hold before the first step until PATH exists).
"""

import dataclasses
import sys
import torch
from torch import nn
import mi_estimators as mie
from mi_estimators.training import Augment, ImageData, TrainConfig, Trainer, override, two_views


class ToyEncoder(nn.Module):
    default_probe = ("global",)

    def __init__(self, in_channels, image_size, width=8):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, 2, 1)
        self.fc = nn.Linear(width * ((image_size + 1) // 2) ** 2, 16)

    def forward(self, x):
        m = torch.relu(self.conv(x))
        return {"global": self.fc(m.flatten(1)), "local": m}


if "toy" not in mie.available("encoders"):
    mie.register("toy", ToyEncoder, kind="encoders")


class Objective(nn.Module):
    def __init__(self, encoder, poison_at=None, gather=None):
        super().__init__()
        self.encoder, self.poison_at, self.calls = encoder, poison_at, 0
        self.gather = gather or (lambda x: x)

    def forward(self, views):
        a, b = (self.encoder(v) for v in views)
        za, zb = self.gather(a["global"]), self.gather(b["global"])
        s = za @ zb.T / 4
        loss = -(s.diagonal() - s.logsumexp(1)).mean()
        self.calls += 1
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return {"loss": loss, "logs": {}, "features": a}


@dataclasses.dataclass(frozen=True)
class ToyConfig(TrainConfig):
    name = "toy"
    encoder: str = override("encoder", "toy")
    lr: float = override("lr", 3e-3)
    batch_size: int = override("batch_size", 16)
    warmup_steps: int = override("warmup_steps", 2)


class ToyTrainer(Trainer):
    """Two-view InfoNCE on a toy encoder."""
    config_class = ToyConfig
    poison_at = None

    def make_inputs(self, x):
        v1, v2 = two_views(x, Augment(translate=1, flip=True), shared_flip=True)
        return self.normalise(v1), self.normalise(v2)

    def build_objective(self, encoder, shapes):
        return Objective(encoder, self.poison_at, gather=self.dist.gather)


def toy_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    base = torch.rand(3, 1, 8, 8, generator=g)
    images = (base[labels] + 0.3 * torch.rand(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return ImageData((images * 255).to(torch.uint8), labels)


def install_fault(spec: str) -> None:
    """Arm one fault of the suite (see the module docstring) in this process."""
    import os
    import signal
    import time

    from mi_estimators.training import evaluation, loop

    kind, _, arg = spec.partition(":")
    step = loop.Trainer._train_step

    def after_step(signum, n):
        def wrapped(self, *args):
            step(self, *args)
            if self.step == n:
                os.kill(os.getpid(), signum)
        loop.Trainer._train_step = wrapped

    if kind in ("kill-step", "term-step"):
        after_step(signal.SIGKILL if kind == "kill-step" else signal.SIGTERM, int(arg))
    elif kind == "kill-replace":
        replace, calls = os.replace, [0]

        def killing_replace(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(arg):
                os.kill(os.getpid(), signal.SIGKILL)
            return replace(*args, **kwargs)
        os.replace = killing_replace
    elif kind == "kill-probe":
        evaluation.linear_probe = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "wait":
        def waiting(self, *args):
            while not os.path.exists(arg):
                time.sleep(0.02)
            return step(self, *args)
        loop.Trainer._train_step = waiting
    elif kind != "none":
        raise ValueError(f"unknown fault {spec!r}")


if __name__ == "__main__":
    import os
    import signal
    torch.set_num_threads(1)
    if sys.argv[1] == "cli":
        from mi_estimators.cli import main
        mie.register("toy", ToyTrainer, kind="trainers", overwrite=True)
        install_fault(sys.argv[2])
        sys.exit(main(["train", "toy", *sys.argv[3:]]))
    if sys.argv[1] == "run":
        ToyTrainer.run(ToyTrainer.parse(["--out", sys.argv[2], *sys.argv[3:]]), train=toy_data(), test=toy_data(48, 1))
        sys.exit(0)
    out, kill_step = sys.argv[1], int(sys.argv[2])  # die in the middle of epoch 2

    def killer(trainer):
        if trainer.step == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

    args = ToyTrainer.parse(["--out", out, "--epochs", "3", "--no-progress"])
    ToyTrainer.run(args, train=toy_data(), test=toy_data(48, 1), callbacks=[killer])
