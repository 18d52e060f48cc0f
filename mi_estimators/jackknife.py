"""The delete-a-group jackknife of a bound on a held-out score matrix, with O(m²) fast paths.

The jackknife of :func:`mi_estimators.fit.held_out` removes the rows *and* columns of one of G
groups of samples from an ``(m, m)`` score matrix in turn and reads the bound out on what is left,
``θ_{−g}``; its variance is ``(G−1)/G · Σ_g (θ_{−g} − θ̄)²`` (Efron & Stein 1981, Ann. Stat. 9:586;
the delete-a-group form: Shao & Tu 1995, *The Jackknife and Bootstrap*, Sec. 5.2).

Done naively (:func:`naive_delete_group_values`, the reference and the fallback of every bound) that
is G copies of an ``(m − m/G)²`` sub-matrix and G bound evaluations. For the two bounds that
:func:`mi_estimators.estimate` reads out, the G values come from one pass over the matrix instead
(:func:`delete_group_values`), from sums of ``exp`` per block of groups:

* DV (and MINE, whose value is DV's): with ``B[a, b] = Σ_{i∈a, j∈b, i≠j} e^{s_ij − c}``,
  ``θ_{−g} = mean_{i∉g} s_ii − c − log( Σ_{a,b≠g} B[a, b] / (m_g (m_g − 1)) )``, ``m_g = m − |g|``;
* InfoNCE (``(N, N)`` scores, no ``clip``): with ``R[i, h] = Σ_{j∈h} e^{s_ij − c_i}`` (``c_i`` the
  row's maximum), ``θ_{−g} = mean_{i∉g} (s_ii − c_i − log Σ_{h≠g} R[i, h]) + log m_g``.

Every kept sum is a sum of non-negative terms (never a total minus the deleted part), in float64,
so there is no cancellation; the values agree with the naive ones to float32 round-off
(``tests/test_estimate.py`` checks both against each other).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from mi_estimators.bounds.base import Bound
from mi_estimators.bounds.dv import DV
from mi_estimators.bounds.infonce import InfoNCE

__all__ = ["delete_group_values", "infonce_by_rows", "jackknife_variance", "naive_delete_group_values", "variance_of"]


def _groups(m: int, groups: int) -> list[np.ndarray]:
    return np.array_split(np.arange(m), groups)


def naive_delete_group_values(bound: Any, scores: Tensor, groups: int) -> np.ndarray:
    """``θ_{−g}`` for each of ``groups`` contiguous groups of the ``(m, m)`` (or ``(m, m, L)``)
    ``scores``: the bound on the matrix without the group's rows and columns, computed as written."""
    m = scores.shape[0]
    out = []
    for drop in _groups(m, groups):
        keep = torch.as_tensor(np.setdiff1d(np.arange(m), drop), device=scores.device)
        out.append(float(bound(scores.index_select(0, keep).index_select(1, keep))))
    return np.array(out)


def _is(bound: Any, cls: type, *methods: str) -> bool:
    """``bound`` is a ``cls`` whose value is ``cls``'s own (no subclass override of ``methods``)."""
    return isinstance(bound, cls) and all(getattr(type(bound), name) is getattr(cls, name) for name in methods)


def _onehot(m: int, groups: int, device: torch.device) -> Tensor:
    """The ``(m, G)`` float64 indicator of the contiguous groups."""
    labels = torch.as_tensor(np.concatenate([np.full(len(g), k) for k, g in enumerate(_groups(m, groups))]),
                             device=device)
    return torch.nn.functional.one_hot(labels, groups).double()


def _dv_values(scores: Tensor, groups: int) -> Tensor | None:
    m = scores.shape[0]
    s = scores.double()
    onehot = _onehot(m, groups, s.device)
    off = s.clone().fill_diagonal_(-math.inf)
    c = off.max()
    e = torch.exp(off - c)                                       # the diagonal is exp(-inf) = 0
    blocks = onehot.T @ e @ onehot                               # (G, G): B[a, b]
    keep = 1.0 - torch.eye(groups, dtype=s.dtype, device=s.device)
    kept_exp = torch.diagonal(keep @ blocks @ keep)              # Σ_{a,b≠g} B[a, b]
    m_g = m - onehot.sum(0)
    diag_mean = (s.diagonal() @ (1.0 - onehot)) / m_g            # mean_{i∉g} s_ii
    if not bool((kept_exp > 0).all()):
        return None
    return diag_mean - c - torch.log(kept_exp / (m_g * (m_g - 1)))


def _infonce_group_sums(scores: Tensor, first: int, onehot: Tensor) -> Tensor | None:
    """Over the rows ``first .. first + len(scores)`` of an ``(m, m)`` matrix (``scores`` holds those
    rows, all m columns), the sum of each row's term with group g deleted, ``s_ii − c_i − log Σ_{h≠g}
    R[i, h]``, over the rows outside g: ``(G,)`` in float64. None where a row keeps no positive sum
    outside some group (its term would be infinite)."""
    s = scores.double()
    rows = torch.arange(s.shape[0], device=s.device)
    groups = onehot.shape[1]
    c = s.max(1, keepdim=True).values                                          # (rows, 1)
    kept = (torch.exp(s - c) @ onehot) @ (1.0 - torch.eye(groups, dtype=s.dtype, device=s.device))  # Σ_{h≠g} R[i, h]
    if not bool((kept > 0).all()):
        return None
    terms = s[rows, rows + first][:, None] - c - torch.log(kept)               # (rows, G)
    return (terms * (1.0 - onehot[first:first + s.shape[0]])).sum(0)          # rows kept when g is deleted


def _infonce_values(scores: Tensor, groups: int) -> Tensor | None:
    onehot = _onehot(scores.shape[0], groups, scores.device)
    sums = _infonce_group_sums(scores, 0, onehot)
    if sums is None:
        return None
    m_g = scores.shape[0] - onehot.sum(0)
    return sums / m_g + torch.log(m_g)


def infonce_by_rows(score_rows: Callable[[int, int], Tensor], m: int, groups: int,
                    chunk: int = 512) -> tuple[float, np.ndarray | None]:
    """InfoNCE of an ``(m, m)`` score matrix given a chunk of rows at a time (``score_rows(a, b)``:
    rows a..b, all m columns), and its ``groups`` delete-a-group values ``θ_{−g}`` (None for
    ``groups < 2``): the InfoNCE formulas of the module docstring, summed over the rows as they come,
    so the matrix is never held. The value's log-sum-exp in the chunk's dtype, its row sum and the
    group sums in float64. (Where a row keeps nothing outside some group, the values are NaN: no
    standard error is claimed then.)

    >>> s = torch.randn(9, 9)
    >>> value, loo = infonce_by_rows(lambda a, b: s[a:b], 9, 3, chunk=4)
    >>> from mi_estimators import get
    >>> abs(value - float(get("infonce")(s))) < 1e-5, bool(np.allclose(loo, delete_group_values(get("infonce"), s, 3)))
    (True, True)
    """
    onehot = None
    total, sums = 0.0, 0.0
    for a in range(0, m, chunk):
        s = score_rows(a, min(a + chunk, m))  # (rows, m)
        rows = torch.arange(s.shape[0], device=s.device)
        total += float((s[rows, rows + a] - torch.logsumexp(s, 1)).double().sum())
        if groups >= 2:
            onehot = _onehot(m, groups, s.device) if onehot is None else onehot
            part = _infonce_group_sums(s, a, onehot)
            sums = sums + (part.cpu().numpy() if part is not None else np.nan)
    value = total / m + math.log(m)
    if onehot is None:
        return value, None
    m_g = m - onehot.sum(0).cpu().numpy()
    return value, sums / m_g + np.log(m_g)


def delete_group_values(bound: Any, scores: Tensor, groups: int) -> np.ndarray:
    """``θ_{−g}`` for each of ``groups`` contiguous groups (:func:`naive_delete_group_values`), from
    one pass over the matrix for DV and InfoNCE on ``(m, m)`` scores (module docstring); the naive
    computation for every other bound, option or layout."""
    fast = None
    if scores.dim() == 2 and isinstance(bound, Bound):
        bound.check(scores)  # the naive path's checks (layout, finite values)
        if _is(bound, DV, "value", "forward"):
            fast = _dv_values(scores, groups)
        elif _is(bound, InfoNCE, "value", "forward") and bound.clip is None:
            fast = _infonce_values(scores, groups)
    if fast is None:
        return naive_delete_group_values(bound, scores, groups)
    return fast.cpu().numpy()


def jackknife_variance(bound: Any, scores: Tensor, groups: int) -> float:
    """Delete-a-group jackknife variance of ``bound`` on an ``(m, m)`` matrix,
    ``(G−1)/G · Σ_g (θ_{−g} − θ̄)²`` over ``groups`` = G groups (module docstring)."""
    return variance_of(delete_group_values(bound, scores, groups))


def variance_of(values: np.ndarray) -> float:
    """The delete-a-group jackknife variance ``(G−1)/G · Σ_g (θ_{−g} − θ̄)²`` of G values ``θ_{−g}``.

    >>> variance_of(np.array([1.0, 2.0, 3.0]))
    1.3333333333333333
    """
    groups = len(values)
    return (groups - 1) / groups * float(((values - values.mean()) ** 2).sum())
