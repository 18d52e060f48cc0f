"""Paired samples as arrays: input checks and the per-column transforms fitted on training rows.

Numerics shared by :func:`mi_estimators.estimate` and :func:`mi_estimators.ksg.ksg_mi`: what
turns the user's ``x`` and ``y`` into finite float arrays (with errors that say what to fix), and
the marginal maps (normal scores of ranks, z-scores) that leave I(X; Y) unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special
from torch import Tensor

__all__ = ["INVERSE_KNOTS", "MIN_SAMPLES", "as_array", "check_pair", "inverse_knots", "marginal_mode",
           "marginal_transform"]

#: fewer rows than this cannot be split into train/monitor/test sets that mean anything
MIN_SAMPLES = 48
#: knots per column of :func:`inverse_knots`
INVERSE_KNOTS = 256


def as_array(a: Any, name: str) -> np.ndarray:
    """``a`` as a finite float64 ``(n, d)`` array.

    Accepted: NumPy arrays of any real dtype (float16/32/64, integers, bool), torch tensors (any
    real dtype, bfloat16 included, on any device), nested lists, and pandas DataFrames or Series
    (through their ``to_numpy()``; pandas itself is not needed to call this). 1-D input becomes one
    column. Raises ``ValueError`` saying what to fix for non-numeric data (object, string, complex
    or datetime dtypes, a DataFrame's text columns named), more than 2 dimensions, empty arrays and
    NaN/Inf entries.
    """
    if isinstance(a, Tensor):
        a = a.detach().cpu()
        if a.is_complex():
            raise ValueError(f"{name} is a complex tensor; pass its real part, or real and imaginary parts as "
                             "separate columns")
        a = (a.double() if a.is_floating_point() else a).numpy()
    elif hasattr(a, "to_numpy") and hasattr(a, "dtypes"):  # a pandas DataFrame or Series
        _check_frame(a, name)
        a = a.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        arr = np.asarray(a)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of numbers; could not convert it: {exc}") from None
    if arr.dtype.kind not in "biuf":
        kinds = {"O": "Python objects", "U": "text", "S": "bytes", "c": "complex numbers", "M": "dates",
                 "m": "time spans", "V": "records"}
        raise ValueError(f"{name} must be numeric (float, int or bool: a NumPy array, a torch tensor, a list of "
                         f"numbers or a numeric DataFrame), got an array of {kinds.get(arr.dtype.kind, arr.dtype)} "
                         f"(dtype {arr.dtype}); convert it, e.g. {name}.astype(float), and encode categorical "
                         "columns as numbers first")
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d), got {arr.shape}; flatten the "
                         f"feature axes first, e.g. {name}.reshape(len({name}), -1)")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise ValueError(
            f"{name} holds {int(np.isnan(arr).sum())} NaN and {int(np.isinf(arr).sum())} infinite "
            f"entries (first in rows {rows[:5].tolist()}); drop or impute those rows first"
        )
    return arr


def _check_frame(frame: Any, name: str) -> None:
    """A ``ValueError`` naming the non-numeric columns of a pandas DataFrame (or a Series' dtype)."""
    dtypes = frame.dtypes if hasattr(frame.dtypes, "items") else {getattr(frame, "name", None): frame.dtypes}
    bad = [str(col) for col, dtype in dtypes.items() if getattr(dtype, "kind", "O") not in "biuf"]
    if bad:
        raise ValueError(f"{name} has non-numeric columns {bad}: select the numeric columns, or encode categorical "
                         "ones as numbers first")


def check_pair(x: Any, y: Any, min_samples: int = MIN_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as finite ``(n, d)`` float64 arrays with the same n >= ``min_samples`` rows."""
    x, y = as_array(x, "x"), as_array(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of samples (rows), got {x.shape[0]} "
                         f"and {y.shape[0]}; row i of x must pair with row i of y")
    if x.shape[0] < min_samples:
        raise ValueError(f"need at least {min_samples} paired samples to train and test a critic, "
                         f"got {x.shape[0]}; with so few, use a k-NN estimate "
                         "(mi_estimators.ksg.ksg_mi) or collect more data")
    return x, y


def marginal_mode(standardize: bool | str) -> str:
    modes = {True: "zscore", False: "none", "zscore": "zscore", "rank": "rank", "none": "none"}
    if isinstance(standardize, (bool, str)) and standardize in modes:
        return modes[standardize]
    raise ValueError(f"standardize must be 'rank', 'zscore' (or True) or 'none' (or False), got {standardize!r}")


def marginal_transform(a: np.ndarray, train_idx: np.ndarray, mode: str = "rank") -> np.ndarray:
    """Transform every column of ``a`` with a map fitted on the rows ``train_idx`` only.

    * ``"rank"`` (normal scores, the Gaussian-copula transform): ``z = Φ⁻¹(F̂(a))`` with F̂ the
      training rows' empirical CDF at mid-ranks: ties share their mean rank, a held-out value
      between two training values gets the rank halfway between theirs, one beyond them all the
      extreme rank. It depends on the order of the values alone.
      Strictly increasing maps of a column leave I(X; Y) unchanged, and this one turns any
      continuous marginal (heavy-tailed, bounded, skewed) into an approximately standard normal
      one, so the critic no longer has to learn the marginals' shape (e.g. Φ⁻¹ of a normal-CDF
      feature, or the tails of a Cauchy). See Ince et al. 2017, "A statistical framework for
      neuroimaging data analysis based on mutual information estimated via a Gaussian copula"
      (Hum. Brain Mapp. 38:1541).
    * ``"zscore"``: ``(a − mean) / sd`` of the training rows.

    A column constant on the training rows becomes 0 on every row in both modes: a map fitted on
    those rows can tell none of its values apart (the held-out rows alone would vary), so it carries
    nothing, like the constant columns :func:`mi_estimators.columns.screen` drops.
    * ``"none"``: ``a`` unchanged.

    >>> a = np.array([[3.0], [1.0], [2.0], [10.0]])
    >>> np.round(marginal_transform(a, np.arange(4)), 3).ravel().tolist()
    [0.319, -1.15, -0.319, 1.15]
    >>> bool((marginal_transform(a ** 3, np.arange(4)) == marginal_transform(a, np.arange(4))).all())
    True
    """
    if mode == "none":
        return a
    train = a[train_idx]
    if mode == "zscore":
        # scaled by the largest |value| first, so 1e±300 data neither overflows nor underflows
        big = np.abs(train).max(0)
        a, train = a / np.where(big > 0, big, 1.0), train / np.where(big > 0, big, 1.0)
        sd = train.std(0)
        return np.where(sd > 0, (a - train.mean(0)) / np.where(sd > 0, sd, 1.0), 0.0)
    if mode != "rank":
        raise ValueError(f"unknown marginal transform {mode!r}; use 'rank', 'zscore' or 'none'")
    return _normal_scores(a, train_idx)


def _normal_scores(a: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
    """``"rank"`` for every column: ``Φ⁻¹(clip(k / 2m))`` with ``k = #train < a + #train <= a``.

    Vectorised over the columns: each column is a contiguous row of ``a.T``, its values are searched
    in the sorted training values in increasing order (``np.searchsorted`` then walks the sorted
    array forwards instead of jumping around it), and since k is an integer in [0, 2m], Φ⁻¹ is
    evaluated once per possible k (2m + 1 values) and looked up."""
    m = len(train_idx)
    cols = np.ascontiguousarray(a.T)
    train = np.sort(cols[:, train_idx], axis=1)
    order = np.argsort(cols, axis=1)
    keys = np.take_along_axis(cols, order, 1)
    k = np.empty(cols.shape, np.int64)
    for j in range(len(cols)):
        k[j, order[j]] = np.searchsorted(train[j], keys[j], "left") + np.searchsorted(train[j], keys[j], "right")
    table = special.ndtri(np.clip(np.arange(2 * m + 1) / (2.0 * m), 0.5 / m, 1 - 0.5 / m))
    z = table[k]
    z[train[:, 0] == train[:, -1]] = 0.0  # a column constant on the training rows carries no information
    return np.ascontiguousarray(z.T)


def inverse_knots(scores: np.ndarray, values: np.ndarray, train_idx: np.ndarray,
                  knots: int = INVERSE_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """``(s, v)``, each ``(d, K)``: knots of each column's map from its normal scores ``scores``
    (``marginal_transform(a, train_idx)``) back to other values of the same column (``values``,
    e.g. its z-scores), at K <= ``knots`` evenly spaced order statistics of the training rows, the
    smallest and largest included.

    Both are increasing functions of the column, so each row of ``s`` and of ``v`` is non-decreasing,
    and equal scores (tied values) have equal values: interpolating linearly between the knots is a
    non-decreasing map ``s -> v`` that recovers ``values`` on the knots, and between them up to the
    spacing of K quantiles (``mi_estimators.estimation.candidates.features``).

    >>> a = np.array([[3.0], [1.0], [2.0], [10.0]])
    >>> s, v = inverse_knots(marginal_transform(a, np.arange(4)), a, np.arange(4), knots=3)
    >>> np.round(s, 3).tolist(), v.tolist()
    ([[-1.15, 0.319, 1.15]], [[1.0, 3.0, 10.0]])
    """
    m = len(train_idx)
    order = np.argsort(scores[train_idx], axis=0, kind="stable")
    pick = np.unique(np.round(np.linspace(0, m - 1, min(knots, m))).astype(np.int64))[:, None]
    rows = np.take_along_axis(order, np.broadcast_to(pick, (len(pick), scores.shape[1])), 0)
    return (np.take_along_axis(scores[train_idx], rows, 0).T.copy(),
            np.take_along_axis(values[train_idx], rows, 0).T.copy())
