r"""Discrete sides: the Barber–Agakov classifier candidate, and the contingency table when both are.

**One discrete side** (say y, K values; x discrete and y continuous is the mirror image, with the
roles swapped). For any conditional law q(y|x),

    I(X; Y) = H(Y) − H(Y | X) >= H(Y) − E[−log q(Y | X)]

(the gap is ``E_x KL(p(y|x) ‖ q(y|x)) >= 0``; Barber & Agakov 2003, "The IM algorithm: a variational
approach to information maximization", NIPS; Poole et al. 2019, "On variational bounds of mutual
information", ICML, §2). :class:`ClassifierCandidate` fits q: a softmax classifier (an MLP with one
hidden layer of ``HIDDEN`` units, half of them dropped out) on the other side's transformed columns,
trained with cross-entropy on the training rows (a moving average of its weights is what is kept),
early-stopped on the monitor rows (the best monitor cross-entropy is kept), and its temperature T
(logits / T) calibrated on the monitor rows. The read-out is ``Ĥ(Y) − CE`` with CE the mean
``−log q(y|x)`` on held-out rows and Ĥ(Y) the Miller–Madow entropy of all n rows' labels
(:func:`mi_estimators.discrete.entropy`; bias ``O(n⁻²)``; training-row frequencies in a held-out
cross-entropy would bias H up by ≈ (K − 1)/(2n)).
Each held-out row's CE is unbiased for the fixed classifier, so the read-out is a lower bound in
expectation, like the other candidates', and competes with them on the monitor split. Its standard
error is the held-out jackknife's, with Ĥ's own ``sd(log p̂(Y))/√n`` added in quadrature
(conservative: the two errors are positively correlated). It is refittable (cross-fitting): a fresh
classifier trained on the fold's rows for the steps early stopping kept, scaled by the rows, with the
temperature kept.

q is a law over all K values: ``q = (1 − ε)·softmax(logits / T) + ε/K`` with ``ε = FLOOR``, so a
value absent from the training rows (a rare class) gets ``ε/K`` rather than 0 (an infinite CE), at a
cost of at most ε nats. Classes are recognised by their transformed values, which the mid-rank
transform keeps distinct for distinct labels (:func:`mi_estimators.arrays.marginal_transform`).

**The cap.** With a discrete side ``I(X; Y) <= min(H(X), H(Y))``, so every end of the intervals (and
``mi``) is capped at the discrete side's ``min(Ĥ_MM + 1.96·se, log K)`` (:func:`cap`;
``settings.mi_cap``), whichever candidate wins: no bound on a variable of K values exceeds log K.

**Both sides discrete**: no training at all (:func:`contingency_estimate`): the jackknife-corrected
contingency-table estimate of :func:`mi_estimators.discrete.contingency_mi` on all n rows, with the
interval ``mi ± 1.96·stderr`` clipped to ``[0, cap]``.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mi_estimators.discrete import DiscreteSide, contingency_mi, contingency_table
from mi_estimators.estimation.candidates.base import Candidate, Context
from mi_estimators.estimation.candidates.trained import TRAIN_VALUE_ROWS
from mi_estimators.estimation.options import EstimateResult, EstimateSettings
from mi_estimators.fit import held_out

if TYPE_CHECKING:
    from mi_estimators.columns import ColumnReport
    from mi_estimators.estimation.options import EstimateOptions

__all__ = ["BarberAgakovBound", "ClassifierCandidate", "ClassifierCritic", "FLOOR", "HIDDEN", "HalfDropout", "cap",
           "contingency_estimate", "discrete_settings", "entropy_stderr"]

#: the classifier: hidden units, Adam learning rate, batch (and dropout of half the hidden units)
HIDDEN, LR, BATCH = 128, 2e-3, 256
#: decay of the moving average of the classifier's weights that is monitored and kept
EMA = 0.99
#: the probability mass spread evenly over all K values (so no value has probability 0)
FLOOR = 1e-4
#: at least this many training steps between two evaluations on the monitor rows
MIN_STEPS_PER_EVAL = 20
#: the temperatures tried on the monitor rows
TEMPERATURES = np.exp(np.linspace(-1.0, 1.0, 41))
Z95 = 1.959963984540054


class ClassifierCritic(nn.Module):
    """A classifier ``q(label | inputs)`` as a critic: ``scores[i, j] = log q(y_j | x_i)`` (side
    ``"y"``) or ``log q(x_i | y_j)`` (side ``"x"``), whose diagonal is ``log q`` of the observed pairs.
    ``classes``: the labels' distinct transformed rows in the training rows (``(K_train, d)``);
    ``values``: K, the number of values of the variable."""

    def __init__(self, net: nn.Module, classes: Tensor, side: str, values: int, temperature: float = 1.0):
        super().__init__()
        self.net, self.side, self.values, self.temperature = net, side, values, temperature
        self.register_buffer("classes", classes)

    def codes(self, labels: Tensor) -> Tensor:
        """The class index of each row of ``labels``; ``len(classes)`` (the "unseen" slot) for a value
        not among the training rows'."""
        equal = (labels[:, None, :] == self.classes[None]).all(-1)
        unseen = torch.full((len(labels),), len(self.classes), dtype=torch.long, device=labels.device)
        return torch.where(equal.any(1), equal.float().argmax(1), unseen)

    def log_q(self, inputs: Tensor) -> Tensor:
        """``(n, K_train + 1)``: log q of each training class, and of any one unseen value (last)."""
        p = torch.softmax(self.net(inputs) / self.temperature, -1) * (1.0 - FLOOR) + FLOOR / self.values
        return torch.log(torch.cat([p, p.new_full((len(p), 1), FLOOR / self.values)], 1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.side == "y":
            return self.log_q(x)[:, self.codes(y)]
        return self.log_q(y)[:, self.codes(x)].T


class BarberAgakovBound:
    """``Ĥ + mean diag(scores)``: the Barber–Agakov bound of a :class:`ClassifierCritic`'s scores with
    the entropy ``Ĥ`` of the discrete side (module docstring)."""

    def __init__(self, entropy: float):
        self.entropy = entropy

    def __call__(self, scores: Tensor) -> Tensor:
        return self.entropy + scores.diagonal().mean()


class HalfDropout(nn.Module):
    """Dropout with p = 1/2 whose mask is random bits of a NumPy generator (``rng``, set while
    training): the same regulariser as ``nn.Dropout(0.5)`` at a seventh of the cost of torch's CPU
    Bernoulli draws, and reproducible from the run's generator. The identity in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.rng: np.random.Generator | None = None

    def forward(self, h: Tensor) -> Tensor:
        if not self.training:
            return h
        if self.rng is None:
            raise RuntimeError("HalfDropout needs its generator (.rng) while training")
        m = h.numel()
        bits = np.unpackbits(np.frombuffer(self.rng.bytes((m + 7) // 8), np.uint8), count=m).reshape(h.shape)
        # non_blocking: a host-to-device copy that does not wait for the device's queue
        return h * torch.from_numpy(bits).to(h.device, non_blocking=True).to(h.dtype) * 2.0


def _roles(side: str, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return (x, y) if side == "y" else (y, x)


def _net(d_in: int, k: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, HIDDEN), nn.ReLU(), HalfDropout(), nn.Linear(HIDDEN, k))


def _cross_entropy(critic: ClassifierCritic, inputs: Tensor, codes: Tensor, temperature: float) -> float:
    seen = codes < len(critic.classes)
    logits = critic.net(inputs[seen]) / temperature
    return float(nn.functional.cross_entropy(logits, codes[seen])) if seen.any() else 0.0


def _train(critic: ClassifierCritic, train: tuple[Tensor, Tensor], monitor: tuple[Tensor, Tensor] | None,
           steps: int, opts: EstimateOptions, rng: np.random.Generator) -> int:
    """Adam on minibatches of the training rows' cross-entropy for at most ``steps`` steps, keeping
    a moving average of the weights (decay ``min(EMA, (1 + t)/(10 + t))`` at step t), which becomes
    ``critic.net``; with a monitor, the average is evaluated every epoch (at least
    ``MIN_STEPS_PER_EVAL`` steps), the weights of the best monitor cross-entropy are kept, and
    training stops after ``opts.patience`` evaluations without improvement. Returns the step whose
    weights were kept."""
    inputs, codes = train
    n = len(inputs)
    batch = min(BATCH, n)
    per_epoch = math.ceil(n / batch)
    every = per_epoch * math.ceil(MIN_STEPS_PER_EVAL / per_epoch)
    live, critic.net = critic.net, copy.deepcopy(critic.net).eval()
    pairs = list(zip(critic.net.parameters(), live.parameters()))
    opt = torch.optim.AdamW(live.parameters(), lr=LR, weight_decay=opts.weight_decay)
    for module in live.modules():
        if isinstance(module, HalfDropout):
            module.rng = rng
    best, best_step, best_state, waited, step = math.inf, steps, None, 0, 0
    while step < steps:
        live.train()
        order = torch.as_tensor(rng.permutation(n), device=inputs.device)  # one transfer an epoch
        for rows in torch.tensor_split(order, per_epoch):  # the sizes of np.array_split
            loss = nn.functional.cross_entropy(live(inputs[rows]), codes[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for average, weight in pairs:
                    average.lerp_(weight, 1.0 - min(EMA, (1.0 + step) / (10.0 + step)))
            step += 1
            if step >= steps:
                break
        if monitor is None or (step % every and step < steps):
            continue
        with torch.no_grad():
            value = _cross_entropy(critic, *monitor, 1.0)
        if value < best - 1e-4:
            best, best_step, best_state, waited = value, step, copy.deepcopy(critic.net.state_dict()), 0
        else:
            waited += 1
            if waited >= opts.patience:
                break
    if best_state is not None:
        critic.net.load_state_dict(best_state)
    return best_step


def _calibrate(critic: ClassifierCritic, inputs: Tensor, codes: Tensor) -> float:
    """The temperature of ``TEMPERATURES`` with the least cross-entropy on the rows given."""
    with torch.no_grad():
        return float(min(TEMPERATURES, key=lambda t: _cross_entropy(critic, inputs, codes, float(t))))


class ClassifierCandidate(Candidate):
    """The Barber–Agakov candidate (module docstring): a :class:`ClassifierCritic` read out by
    :class:`BarberAgakovBound`. ``info`` holds ``side``, ``values`` (K), ``entropy`` (Ĥ_MM),
    ``temperature`` and ``best_step``."""

    refittable = True

    def __init__(self, ctx: Context, critic: ClassifierCritic, side: DiscreteSide, best_step: int):
        self.ctx, self.side, self.best_step = ctx, side, best_step
        bound = BarberAgakovBound(side.entropy)
        monitor = held_out(critic, bound, *ctx.data.monitor, ctx.opts.eval_batch, groups=0)[0]
        super().__init__("classifier", critic, bound, monitor, self._train_value(critic, *ctx.data.train),
                         dict(side=side.name, values=side.values, entropy=side.entropy,
                              temperature=critic.temperature, best_step=best_step))

    def _train_value(self, critic: ClassifierCritic, x: Tensor, y: Tensor) -> float:
        return held_out(critic, BarberAgakovBound(self.side.entropy), x[:TRAIN_VALUE_ROWS], y[:TRAIN_VALUE_ROWS],
                        self.ctx.opts.eval_batch, groups=0)[0]

    @staticmethod
    def _critic(side: DiscreteSide, inputs: Tensor, labels: Tensor) -> tuple[ClassifierCritic, Tensor]:
        classes = torch.unique(labels, dim=0)
        critic = ClassifierCritic(_net(inputs.shape[1], len(classes)), classes, side.name, side.values)
        return critic.to(inputs.device), critic.codes(labels)

    @classmethod
    def fit(cls, ctx: Context, side: DiscreteSide | None) -> "ClassifierCandidate | None":
        """The classifier of ``side``'s values from the other side's columns, fitted on the training
        rows, early-stopped and temperature-calibrated on the monitor rows; None without a discrete side."""
        if side is None:
            return None
        inputs, labels = _roles(side.name, *ctx.data.train)
        critic, codes = cls._critic(side, inputs, labels)
        m_inputs, m_labels = _roles(side.name, *ctx.data.monitor)
        monitor = (m_inputs, critic.codes(m_labels))
        best_step = _train(critic, (inputs, codes), monitor, ctx.opts.steps, ctx.opts, ctx.rng)
        critic.temperature = _calibrate(critic, *monitor)
        return cls(ctx, critic, side, best_step)

    @property
    def read_out_name(self) -> str:
        return "barber-agakov"

    def describe(self) -> str:
        """E.g. ``"classifier q(y|x) (MLP, 10 classes, T 1.05), Barber-Agakov read-out H(y) - CE"``."""
        s, other = self.side.name, "x" if self.side.name == "y" else "y"
        return (f"classifier q({s}|{other}) (MLP, {self.side.values} classes, T {self.critic.temperature:.3g}), "
                f"Barber-Agakov read-out H({s}) - CE")

    def refit(self, x: np.ndarray, y: np.ndarray) -> tuple[ClassifierCritic, float]:
        """A fresh classifier trained on the rows ``(x, y)`` for the steps early stopping kept, scaled by
        the rows (at most ``opts.steps``), with the calibrated temperature."""
        ctx = self.ctx
        xt, yt = (torch.as_tensor(a, dtype=torch.float32, device=ctx.device) for a in (x, y))
        inputs, labels = _roles(self.side.name, xt, yt)
        critic, codes = self._critic(self.side, inputs, labels)
        steps = max(1, min(ctx.opts.steps, round(self.best_step * len(x) / len(ctx.data.train[0]))))
        _train(critic, (inputs, codes), None, steps, ctx.opts, ctx.rng)
        critic.temperature = self.critic.temperature
        return critic, self._train_value(critic, xt, yt)


def entropy_stderr(chosen: Candidate, se: float) -> float:
    """The read-out's standard error ``se``, with Ĥ's added in quadrature for a :class:`ClassifierCandidate`."""
    return math.hypot(se, chosen.side.entropy_se) if isinstance(chosen, ClassifierCandidate) else se


def cap(sides: dict[str, DiscreteSide], mi: float, *intervals: tuple[float, float]) -> tuple[Any, ...]:
    """``(cap, mi, *intervals)`` with ``mi`` and every interval end at most ``cap``, the smallest
    ``entropy_upper()`` of the discrete ``sides`` (None and unchanged without one)."""
    if not sides:
        return (None, mi, *intervals)
    top = min(s.entropy_upper() for s in sides.values())
    return (top, min(mi, top), *((min(lo, top), min(hi, top)) for lo, hi in intervals))


def contingency_estimate(sides: dict[str, DiscreteSide], opts: EstimateOptions, columns: ColumnReport,
                         device: str) -> EstimateResult:
    """The result for two discrete sides (module docstring): the jackknife contingency-table estimate
    on all n rows, nothing split or trained (``chosen_critic`` ``"contingency"``)."""
    table = contingency_table(sides["x"].codes, sides["y"].codes)
    r = contingency_mi(table)
    top, mi, ci = cap(sides, r["mi"], (r["mi"] - Z95 * r["stderr"], r["mi"] + Z95 * r["stderr"]))
    ci = (max(0.0, ci[0]), max(0.0, ci[1]))
    n = int(table.sum())
    settings = EstimateSettings(
        options=opts, device=device, n=n, n_train=0, n_val=0, n_test=0, chosen_critic="contingency",
        read_out="jackknife", monitor={}, train_value=r["plugin"], read_out_folds=0,
        chosen_description=(f"contingency table of {table.shape[0]} x {table.shape[1]} values, jackknife bias "
                            f"correction (plug-in {r['plugin']:.4f}, Miller-Madow {r['miller_madow']:.4f})"),
        dropped_columns=columns.dropped, **discrete_settings(sides, top))
    history: dict[str, list[float]] = {"step": [], "train": [], "eval_step": [], "monitor": [], "averaged": []}
    return EstimateResult(mi=mi, stderr=r["stderr"], ci=ci, ci_heldout=ci, history=history, best_step=0,
                          stopped_early=False, settings=settings)


def discrete_settings(sides: dict[str, DiscreteSide], top: float | None) -> dict[str, Any]:
    """The fields of :class:`EstimateSettings` that say which sides were discrete (``discrete``), their
    entropies (``entropy``) and the cap (``mi_cap``)."""
    kind = "both" if len(sides) == 2 else next(iter(sides), "none")
    return dict(discrete=kind, entropy={k: s.entropy for k, s in sides.items()}, mi_cap=top)
