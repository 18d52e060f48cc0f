"""Evaluating frozen features: a linear probe, kNN accuracy, and an online probe during training.

The linear probe is multinomial logistic regression (softmax regression) on standardised
features, fitted with full-batch L-BFGS in torch on the train split and scored on the test split:
the same model as scikit-learn's ``LogisticRegression(multi_class="multinomial")`` with an L2
penalty, but fast on 60,000 x several-thousand features and usable on a GPU.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> y = torch.arange(200) % 2
>>> x = torch.randn(200, 5, generator=g) + 3 * y[:, None]
>>> linear_probe(x[:100], y[:100], x[100:], y[100:]) > 0.95
True
"""

from __future__ import annotations

import sys
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["extract_features", "linear_probe", "knn_accuracy", "OnlineProbe"]


@torch.no_grad()
def extract_features(fn: Callable[[Tensor], Tensor], images: Tensor, *, batch_size: int = 512,
                     device: torch.device | str = "cpu", preprocess: Callable[[Tensor], Tensor] | None = None,
                     progress: bool = False) -> Tensor:
    """``fn`` applied to ``images`` in batches on ``device``, flattened to ``(N, D)`` float32 on the CPU
    (a progress bar on stderr with ``progress``)."""
    out = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="probe: features", leave=False, file=sys.stderr, disable=not progress):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        if preprocess is not None:
            x = preprocess(x)
        out.append(fn(x).float().flatten(1).cpu())
    return torch.cat(out)


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *,
                 weight_decay: float = 1e-4, max_iter: int = 200, device: torch.device | str = "cpu",
                 progress: bool = False) -> float:
    """Test accuracy of softmax regression fitted on ``(train_x, train_y)``.

    Features are standardised with the train split's mean and standard deviation; the objective
    is mean cross-entropy + ``weight_decay/2 * ||W||^2``, minimised by L-BFGS (strong Wolfe line
    search) for at most ``max_iter`` iterations (at most ``1.25 max_iter`` evaluations of the
    objective, which ``progress`` counts on stderr).
    """
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {tuple(train_x.shape)} and "
                         f"{tuple(test_x.shape)}")
    train_x, test_x = train_x.float().to(device), test_x.float().to(device)
    train_y, test_y = train_y.long().to(device), test_y.long().to(device)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    k = int(max(train_y.max(), test_y.max())) + 1
    lin = nn.utils.skip_init(nn.Linear, train_x.shape[1], k, device=device)  # no draw from the global RNG
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    bar = tqdm(total=max_iter * 5 // 4, desc="probe: L-BFGS evaluations", leave=False, file=sys.stderr,
               disable=not progress)

    def closure():
        bar.update(1)
        opt.zero_grad()
        loss = F.cross_entropy(lin(train_x), train_y) + 0.5 * weight_decay * lin.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad(), bar:
        opt.step(closure)
    with torch.no_grad():
        return float((lin(test_x).argmax(1) == test_y).float().mean())


@torch.no_grad()
def knn_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, *, k: int = 20,
                 chunk: int = 1024) -> float:
    """Accuracy of a k-nearest-neighbour majority vote under cosine similarity."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    tr = F.normalize(train_x.float(), dim=1)
    te = F.normalize(test_x.float(), dim=1)
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, len(tr))
    correct = 0
    for s in range(0, len(te), chunk):
        sims = te[s:s + chunk] @ tr.T  # (chunk, N_train)
        idx = sims.topk(k, dim=1).indices
        votes = F.one_hot(train_y[idx], n_cls).sum(1)  # (chunk, classes)
        correct += int((votes.argmax(1) == test_y[s:s + chunk]).sum())
    return correct / len(te)


class OnlineProbe(nn.Module):
    """A linear classifier trained alongside the encoder on *detached* features.

    ``probe(features, labels)`` returns ``(cross_entropy, n_correct)``; its gradient never reaches
    the encoder. Add the loss to the training loss and it learns with the same optimiser.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.linear(features.detach().float().flatten(1))
        return F.cross_entropy(logits, labels), (logits.argmax(1) == labels).sum()
