"""What ``estimate()`` relies on to run the same call on a GPU, checked without one: the device
choice and its errors, the random states ``seeded`` seeds and gives back, and a training loop that
does not read a value back from the device every step (the ``meta`` device stands in for an
asynchronous one: it has no data, so the first read-back raises)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mi_estimators as mie
from mi_estimators import fit
from mi_estimators.critics import SeparableCritic
from mi_estimators.device import resolve_device, with_index


def _fake_cuda(monkeypatch, count: int = 1, current: int = 0) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)


def test_resolve_device_auto_and_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    _fake_cuda(monkeypatch, count=2)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="2 CUDA device.*cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_with_index_names_the_current_cuda_device(monkeypatch):
    _fake_cuda(monkeypatch, count=3, current=2)
    assert with_index(torch.device("cuda")) == torch.device("cuda", 2)
    assert with_index(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert with_index(torch.device("cpu")) == torch.device("cpu")


def test_seeded_seeds_the_cpu_alone_and_gives_the_state_back(monkeypatch):
    torch.manual_seed(123)
    expected = torch.randn(5)          # what seed 123 draws
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    before = torch.get_rng_state()
    with fit.seeded(123, torch.device("cpu")):
        inside = torch.randn(5)
    assert torch.equal(inside, expected)
    assert torch.equal(torch.get_rng_state(), before)
    assert calls == []                 # no CUDA generator seeded (torch.manual_seed would seed them all)


def _meta_fit(monkeypatch, steps: int, eval_every: int) -> tuple[int, Exception]:
    """Train a critic on the meta device; the number of forward passes before the first read-back."""
    monkeypatch.setattr(fit, "make_adam",  # the fused kernel has no meta version
                        lambda params, lr, weight_decay=0.0: torch.optim.AdamW(params, lr=lr, foreach=False))
    critic = SeparableCritic(3, 3, hidden=8, embed_dim=4).to("meta")
    calls = []
    critic.register_forward_hook(lambda *args: calls.append(1))
    x, y = torch.empty(200, 3, device="meta"), torch.empty(200, 3, device="meta")
    config = fit.FitConfig(steps=steps, batch=32, lr=1e-3, eval_every=eval_every, ema=0.9)
    with pytest.raises(NotImplementedError, match="meta") as info:
        fit.fit_critic(critic, mie.get("infonce"), (x, y), None, config, rng=np.random.default_rng(0))
    return len(calls), info.value


def test_fit_critic_reads_the_training_values_back_once_per_evaluation(monkeypatch):
    assert _meta_fit(monkeypatch, steps=40, eval_every=25)[0] == 25
    assert _meta_fit(monkeypatch, steps=12, eval_every=25)[0] == 12   # or at the last step


class _Diverging(torch.nn.Module):
    """A separable critic whose training scores become NaN from its ``at``-th training call on."""

    def __init__(self, at: int):
        super().__init__()
        self.inner, self.at, self.calls = SeparableCritic(2, 2, hidden=8, embed_dim=4), at, 0

    def forward(self, x, y):
        scores = self.inner(x, y)
        self.calls += self.training
        return scores * float("nan") if self.training and self.calls >= self.at else scores


@pytest.mark.parametrize("monitored", [True, False])
def test_divergence_names_its_first_step_between_evaluations(monitored):
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(300, 2)), dtype=torch.float32)
    data = (x, x + torch.as_tensor(rng.normal(size=(300, 2)), dtype=torch.float32))
    config = fit.FitConfig(steps=50, batch=32, lr=1e-3, eval_every=10)
    with pytest.raises(ValueError, match="training diverged at step 17 "):
        fit.fit_critic(_Diverging(17), mie.get("infonce"), data, data if monitored else None, config, rng=rng)


def test_fit_critic_history_has_every_step_once():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(300, 2)), dtype=torch.float32)
    data = (x, x + torch.as_tensor(rng.normal(size=(300, 2)), dtype=torch.float32))
    config = fit.FitConfig(steps=37, batch=32, lr=1e-3, eval_every=10)
    result = fit.fit_critic(SeparableCritic(2, 2, hidden=8, embed_dim=4), mie.get("infonce"), data, data, config,
                            rng=rng)
    assert result.history["step"] == list(range(1, 38)) and len(result.history["train"]) == 37
    assert result.history["eval_step"] == [10, 20, 30, 37]
    assert all(np.isfinite(result.history["train"]))
