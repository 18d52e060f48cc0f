"""The protocol every candidate of :func:`mi_estimators.estimate` follows.

A candidate is one model of the dependence between x and y, turned into a critic (a function whose
``(n, n)`` score matrix a bound reads out). Its life in ``estimate()``:

1. **fit on the training rows**: a classmethod ``fit(ctx, ...)`` fits it to ``ctx.data.train``
   and returns it (or None where it does not apply to these data or options);
2. **score on the monitor rows**: ``monitor``, its read-out bound on the monitor split, is what
   :func:`choose` compares (never the test split, which would bias the estimate upwards);
3. **refit on a fold** (where ``refittable``): ``refit(x, y)`` fits the same model, with the
   choices the monitor made kept fixed, to other rows of transformed data, for cross-fitting
   (``refit_folds`` for all folds at once: in turn by default, as one stacked model for the
   trained critic);
4. **read out**: ``bound`` (named ``read_out_name``) on the full score matrix of held-out rows
   (:mod:`mi_estimators.estimation.readout`).

It also knows its value on its own training rows (``train_value``: the upper end of the
interval), what was fitted (``info``), and how to say what it is (:meth:`Candidate.describe`).
A new candidate is a new module with a subclass of :class:`Candidate`, and one line in
``estimate()`` that fits it.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from mi_estimators.estimation.readout import Splits

if TYPE_CHECKING:
    from mi_estimators.estimation.options import EstimateOptions

__all__ = ["Candidate", "Context", "choose"]


class Context(NamedTuple):
    """What every candidate is fitted from: the transformed splits, the resolved options, the run's
    random generator (shared, in the order ``estimate()`` draws from it) and the device."""

    data: Splits
    opts: "EstimateOptions"
    rng: np.random.Generator
    device: torch.device


class Candidate(abc.ABC):
    """A fitted candidate: a critic, the bound that reads it out, its value on the monitor split
    and on its own training rows, and ``info`` on what was fitted (module docstring)."""

    #: whether :meth:`refit` can fit it again on other rows (cross-fitting, ``folds > 1``)
    refittable: bool = False

    def __init__(self, name: str, critic: nn.Module, bound: Any, monitor: float,
                 train_value: float | Callable[[], float], info: Mapping[str, Any]):
        #: the key of ``settings.monitor`` and the value of ``settings.chosen_critic``
        self.name = name
        self.critic, self.bound = critic, bound
        self.monitor = monitor
        self._train_value_or_fn = train_value
        self.info = info

    @property
    def train_value(self) -> float:
        """Its value on its own training rows; given as a function, computed on first use (only the
        chosen candidate's is used, and a wide critic's costs a read-out of a million pairs)."""
        if callable(self._train_value_or_fn):
            self._train_value_or_fn = float(self._train_value_or_fn())
        return self._train_value_or_fn

    @property
    @abc.abstractmethod
    def read_out_name(self) -> str:
        """The name of the read-out bound (``settings.read_out``)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What it is, for the printed result: e.g. ``"Gaussian-copula rank-2 critic, DV read-out"``."""

    def refit(self, x: np.ndarray, y: np.ndarray) -> tuple[nn.Module, float]:
        """The same model fitted to other rows of transformed data: ``(critic, its training value)``."""
        raise NotImplementedError(f"the {self.name} candidate cannot be refitted (refittable is False)")

    def refit_folds(self, folds: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[nn.Module, float]]:
        """:meth:`refit` on the rows of each fold, in turn (a candidate may fit them all at once)."""
        return [self.refit(x, y) for x, y in folds]

    def ensemble(self, ctx: Context) -> "Candidate":
        """The candidate to read out once chosen, with ``ctx.opts.ensemble`` members where it can
        average several fits; by default itself."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, monitor={self.monitor:.4f}, info={dict(self.info)})"


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the largest monitor value (the first on ties)."""
    return max(candidates, key=lambda c: c.monitor)
