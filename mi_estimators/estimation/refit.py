"""The cross-fit's K refits trained as one stacked model.

Cross-fitting (:func:`mi_estimators.estimation.readout.crossfit`) refits the chosen critic on the
other K − 1 folds of each fold, K times: K fits of one architecture, for the same step count, on
different rows. They share no parameters, so they can train as one critic with stacked weights
(``n_models=K``, :func:`mi_estimators.critics.stack`), copy k on batches of its own rows: one
batched matrix product per layer instead of K small ones, and one optimiser pass over the stacked
weights (the validation suite trains one critic per bound the same way). The sum of the K losses
has copy k's own gradient in copy k's weights, and AdamW and the moving average act elementwise,
so copy k ends where :func:`mi_estimators.fit.fit_critic` alone would have taken it (up to the
rounding of the batched products): :func:`fit_stacked` draws the batches from the generator in the
order K such fits, one after the other, draw them, and ``tests/test_refit.py`` checks it against
that sequential reference.

A critic wrapped in a fixed input map (the value features, a canonical or ridge projection: an
``inputs(x, y)`` method and the trained ``critic`` inside) trains through its inner critic on the
mapped rows of its fold; the maps themselves are not trained.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mi_estimators.bounds.base import finite_checks, value_and_loss
from mi_estimators.critics import SeparableCritic, inner_critic, inner_inputs, stack, unstack
from mi_estimators.fit import FitConfig, MovingAverage, make_adam, minibatches

__all__ = ["fit_stacked", "stackable"]


def stackable(critics: Sequence[nn.Module]) -> bool:
    """Whether ``critics`` can train as one stacked model: separable critics of one configuration,
    bare or each inside a fixed input map (module docstring), two or more."""
    inner = [inner_critic(c) for c in critics]
    return (len(inner) > 1 and all(type(c) is SeparableCritic and c.n_models is None for c in inner)
            and all((c.x_dim, c.y_dim, c.config) == (inner[0].x_dim, inner[0].y_dim, inner[0].config) for c in inner))


def _drawn(n: int, batch: int, steps: int, rng: np.random.Generator, device) -> list[Tensor]:
    """The minibatch indices of ``steps`` steps of :func:`mi_estimators.fit.fit_critic` on ``n`` rows."""
    batches = minibatches(n, min(batch, n), rng, device)
    return [next(batches) for _ in range(steps)]


@torch.no_grad()
def _load(critic: nn.Module, trained: nn.Module) -> nn.Module:
    inner_critic(critic).load_state_dict(trained.state_dict())
    return critic.eval()


def fit_stacked(critics: Sequence[nn.Module], bound: Any, train: Sequence[tuple[Tensor, Tensor]],
                steps: Sequence[int], config: FitConfig, rng: np.random.Generator) -> list[nn.Module]:
    """Train ``critics[k]`` on the rows ``train[k]`` for ``steps[k]`` steps without a monitor, all
    at once (module docstring); returns them trained, in eval mode, holding the last weights (their
    moving average with ``config.ema``): what ``fit_critic(critics[k], bound, train[k], None,
    replace(config, steps=steps[k]), rng=rng)`` for k = 0, 1, ... does. Raises ``ValueError`` where
    :func:`stackable` is false or a copy's training diverges."""
    if not stackable(critics) or len(train) != len(critics) or len(steps) != len(critics):
        raise ValueError("fit_stacked needs two or more separable critics of one configuration, with rows and "
                         "a step count for each")
    device = train[0][0].device
    indices = [_drawn(x.shape[0], config.batch, s, rng, device) for (x, _), s in zip(train, steps)]
    inputs = [inner_inputs(c, *rows) for c, rows in zip(critics, train)]
    model = stack([inner_critic(c) for c in critics])
    optimizer = make_adam(model.parameters(), config.lr, config.weight_decay)
    average = None if config.ema is None else MovingAverage(model, config.ema)
    kept: dict[int, nn.Module] = {}
    pending: list[Tensor] = []  # training estimates still on the device, checked every eval_every steps
    model.train()
    for step in range(1, max(steps) + 1):
        idx = [i[min(step, len(i)) - 1] for i in indices]  # a copy past its count repeats its last batch
        x, y = (torch.stack([rows[j][i] for rows, i in zip(inputs, idx)]) for j in (0, 1))
        with finite_checks(False):
            values, losses = zip(*(value_and_loss(bound, s) for s in model(x, y)))
        optimizer.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        optimizer.step()
        if average is not None:
            average.update()
        pending.append(torch.stack(values).detach())
        if step % config.eval_every == 0 or step == max(steps):
            _check_finite(pending, step, steps)
        for k in (k for k, s in enumerate(steps) if s == step):  # copy k's last step: keep what it holds now
            kept[k] = unstack(model if average is None else average.module, k)
    return [_load(c, kept[k]) for k, c in enumerate(critics)]


def _check_finite(pending: list[Tensor], step: int, steps: Sequence[int]) -> None:
    """Raise ``ValueError`` at the first non-finite training estimate of a copy within its step
    count in ``pending`` (the steps up to ``step``), then empty it."""
    values = torch.stack(pending).float().cpu().numpy()
    first = step - len(values) + 1
    pending.clear()
    for i, row in enumerate(values):
        bad = [k for k, v in enumerate(row) if first + i <= steps[k] and not math.isfinite(v)]
        if bad:
            raise ValueError(f"training diverged at step {first + i} of refit {bad[0]} (the training estimate is "
                             f"{row[bad[0]]}); lower lr or use a clipped bound (smile)")
