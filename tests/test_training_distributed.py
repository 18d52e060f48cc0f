"""DDP on the CPU (gloo, 2 processes): negatives gathered across ranks give the loss and the
gradients of one process holding the global batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

import mi_estimators as mie
from mi_estimators.testing.distributed import gloo_available, run_on_ranks
from mi_estimators.training import gather_with_grad, rank_offset
from mi_estimators.training.data import EpochBatches

B, L, D = 4, 3, 5  # per-rank batch, locations, embedding size


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Linear(6, D)  # antecedents (B, D)
        self.g = nn.Linear(6, D * L)  # consequents (B, D, L)

    def forward(self, x, y):
        return self.f(x), self.g(y).view(len(y), D, L)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2 * B, 6, generator=g)
    return x, x + 0.5 * torch.randn(2 * B, 6, generator=g)


def _losses(model, x, y):
    """Per strategy, the loss this process computes (the global-batch loss on one process)."""
    from mi_estimators.nce import nce_loss

    def global_scores(bound_name, locations):
        u, v = model(x, y)
        u, v = gather_with_grad(u), gather_with_grad(v)
        s = torch.einsum("id,jdl->ijl", u, v) if locations else u @ v.mean(-1).T
        return mie.get(bound_name).loss(s)

    def local_rows():
        u, v = model(x, y)
        s = torch.einsum("id,jdl->ijl", u, gather_with_grad(v))  # (B, W*B, L)
        return nce_loss(s, pos_offset=rank_offset(len(x)))

    return {"jsd_NNL": lambda: global_scores("jsd", True), "dv_NN": lambda: global_scores("dv", False),
            "infonce_NNL": lambda: global_scores("infonce", True), "nce_local_rows": local_rows}


def _run_all(model, x, y, world):
    out = {}
    for name, fn in _losses(model, x, y).items():
        model.zero_grad(set_to_none=True)
        loss = fn()
        loss.backward()
        value = loss.detach().clone()
        if world > 1:
            dist.all_reduce(value)
            value /= world
        out[name] = (value, {k: p.grad.clone() for k, p in model.named_parameters()})
    return out


def _worker(rank, world, path):
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(TwoHeads())
    x, y = _data()
    sl = slice(rank * B, (rank + 1) * B)
    out = _run_all(model, x[sl], y[sl], world)
    if rank == 0:
        torch.save({k: (v, {n.removeprefix("module."): g for n, g in grads.items()}) for k, (v, grads) in out.items()},
                   path)


@pytest.mark.skipif(not gloo_available(), reason="needs torch.distributed with gloo")
def test_two_ranks_equal_one_rank_with_the_global_batch(tmp_path):
    path = tmp_path / "rank0.pt"
    run_on_ranks(_worker, str(path))
    two = torch.load(path)
    torch.manual_seed(0)
    model = TwoHeads()
    one = _run_all(model, *_data(), world=1)
    assert set(two) == set(one)
    for name in one:
        torch.testing.assert_close(two[name][0], one[name][0], rtol=1e-5, atol=1e-6, msg=name)
        for p in one[name][1]:
            torch.testing.assert_close(two[name][1][p], one[name][1][p], rtol=1e-4, atol=1e-6,
                                       msg=f"{name}: grad of {p}")


def test_gather_is_identity_on_one_process():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x and rank_offset(3) == 0


def test_epoch_batches_shard_and_order():
    ranks = [EpochBatches(50, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    a, b = (r.epoch(0) for r in ranks)
    flat_a, flat_b = sum(a, []), sum(b, [])
    assert len(a) == len(ranks[0]) == 25 // 4 and not set(flat_a) & set(flat_b)
    assert a == ranks[0].epoch(0) and a != ranks[0].epoch(1)  # keyed by (seed, epoch)
    assert ranks[0].epoch(0, skip=2) == a[2:]
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatches(10, 8, seed=0, world_size=2)
