"""DDP (gloo, 2 CPU processes): the multiscale NCE with negatives gathered from both ranks gives the
loss and the gradients of one process holding the concatenated batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from mi_estimators.testing.distributed import gloo_available, run_on_ranks
from mi_estimators.training import gather_with_grad
from mi_estimators_amdim.objective import MultiscaleNCE, NCEOptions

B = 3  # per rank
CHANNELS = {"f1": 6, "f5": 5, "f7": 4}
#: the fused NCE (local rows, pos_offset), the mixture (square gathered scores), a registry bound
CONFIGS = {"fused": {}, "mixture": {"mixture": 2, "tau": 1.5},
           "infonce_bound": {"bound_options": {"clip": None}}}


def _features():
    g = torch.Generator().manual_seed(0)
    return [{"f1": torch.randn(2 * B, 6, generator=g), "f5": torch.randn(2 * B, 5, 2, 2, generator=g),
             "f7": torch.randn(2 * B, 4, 3, 3, generator=g)} for _ in range(2)]


def _objective(config):
    torch.manual_seed(0)
    # no random draws, and no batch norm on the embeddings (its statistics are per rank)
    return MultiscaleNCE(CHANNELS, 8, NCEOptions(clip=5.0, locations_55=None, embed_bn=False, **CONFIGS[config]))


def _single_process(config):
    """Loss and gradients of one process holding both ranks' samples."""
    model = _objective(config)
    loss, _ = model(*_features())
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def _worker(rank, world, path):
    out = {}
    for config in CONFIGS:
        model = _objective(config)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        sl = slice(rank * B, (rank + 1) * B)
        feats = [{k: v[sl] for k, v in f.items()} for f in _features()]
        out[config] = _ddp_step(ddp, feats, world, rank)
    if rank == 0:
        torch.save(out, path)


def _ddp_step(ddp, feats, world, rank):
    loss, _ = ddp(*feats, gather=gather_with_grad, rank=rank)
    loss.backward()
    value = loss.detach().clone()
    dist.all_reduce(value)
    value /= world
    return value, {k: p.grad.clone() for k, p in ddp.module.named_parameters()}


@pytest.mark.skipif(not gloo_available(), reason="needs torch.distributed with the gloo backend")
def test_two_ranks_gather_negatives_like_one_process_with_the_global_batch(tmp_path):
    path = tmp_path / "rank0.pt"
    run_on_ranks(_worker, str(path))
    two = torch.load(path)
    for config in CONFIGS:
        value, grads = _single_process(config)
        torch.testing.assert_close(two[config][0], value, rtol=1e-5, atol=1e-6, msg=config)
        assert set(two[config][1]) == set(grads)
        for name, g in grads.items():
            torch.testing.assert_close(two[config][1][name], g, rtol=1e-4, atol=1e-6,
                                       msg=f"{config}: gradient of {name}")
