r"""Discrete variables: which side of the data is discrete, entropies from counts, and the exact
contingency-table estimate of I(X; Y) when both sides are.

**Which side is discrete** (:func:`discrete_sides`, the ``discrete=`` option of
:func:`mi_estimators.estimate`). A side is its rows taken as one value (all its columns together:
two binary columns make one variable of up to 4 values). ``discrete="auto"`` treats a side as
discrete when its rows take K distinct values with

    2 <= K <= ``AUTO_MAX_VALUES`` (32)   and   n >= ``AUTO_ROWS_PER_VALUE`` · K (20 rows per value on average),

which takes class labels, small counts and codes, and never a continuous variable (n distinct
values), a rounded one with many levels, or a few-valued one seen too few times to count.
``"x"``, ``"y"`` and ``"both"`` declare it (checked: a declared side needs at least 2 rows per value
on average, i.e. ``K <= n / 2``, else it is a continuous variable and ``ValueError`` says so);
``"none"`` treats every side as continuous.

**Entropy from counts** (:func:`entropy`). For K values seen with counts ``c_k`` in n rows the
plug-in ``Ĥ = −Σ (c_k/n) log(c_k/n)`` is biased down by ``(K − 1)/(2n) + O(n⁻²)``; the Miller–Madow
estimate adds it back, ``Ĥ_MM = Ĥ + (K̂ − 1)/(2n)`` with K̂ the values seen (Miller 1955, "Note on
the bias of information estimates"; Paninski 2003, "Estimation of entropy and mutual information",
Neural Comput. 15:1191, §3). Its standard error is the delta method's, ``sd(log p̂(Y)) / √n``.
(The cross-entropy of held-out rows against training-row frequencies, ``E[−log p̂_train(Y)]``,
is instead biased *up* by about ``(K − 1)/(2 n_train)``: it is not used.)

**Both sides discrete** (:func:`contingency_mi`). ``I = H(X) + H(Y) − H(X, Y)`` of the plug-in
table frequencies is biased up by ``((K_x−1)(K_y−1))/(2n)`` to first order (Miller–Madow on each
term). The estimate is its delete-one jackknife, which removes the whole ``1/n`` term of the bias
without counting cells (Quenouille 1956; Efron & Stein 1981; for entropies Zahl 1977, Ecology
58:907): ``Î_J = n Î − (n − 1) mean_i Î_{(i)}`` with ``Î_{(i)}`` the plug-in MI without row i,
computed from the counts in O(cells) (deleting a row only changes three counts). Its standard error
is the jackknife's, ``√((n−1)/n Σ_i (Î_{(i)} − mean)²)``, but at least the plug-in's sampling
deviation under independence, ``√(2 df)/(2n)`` with ``df = (K_x − 1)(K_y − 1)`` (``2n Î`` is then
χ²_df, the G-test): at independence the plug-in is quadratic in the table and the jackknife's
linearisation says 0. A sparse table (few rows per cell) leaves a bias of order ``n⁻²`` per cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mi_estimators import options as check

__all__ = ["AUTO_MAX_VALUES", "AUTO_ROWS_PER_VALUE", "DISCRETE_CHOICES", "DiscreteSide", "codes",
           "contingency_mi", "contingency_table", "discrete_sides", "entropy", "mutual_information_plugin",
           "plugin_entropy", "pmf_mutual_information"]

#: ``discrete="auto"``: a side with at most this many distinct rows ...
AUTO_MAX_VALUES = 32
#: ... and at least this many rows per distinct row on average is discrete
AUTO_ROWS_PER_VALUE = 20
#: a declared discrete side needs at least this many rows per value on average
DECLARED_ROWS_PER_VALUE = 2
#: the values of the ``discrete=`` option
DISCRETE_CHOICES = ("auto", "x", "y", "both", "none")


def codes(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``(codes, K)``: each row of ``a`` (``(n,)`` or ``(n, d)``) as an integer in ``0..K−1``, equal
    rows equal codes, in the sorted order of the distinct rows.

    >>> codes(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]]))
    (array([1, 0, 1]), 2)
    """
    a = np.asarray(a)
    values, inverse = np.unique(a.reshape(len(a), -1), axis=0, return_inverse=True)
    return inverse.ravel().astype(np.int64), len(values)


def plugin_entropy(counts: np.ndarray) -> float:
    """The plug-in entropy ``log n − Σ c log c / n = −Σ p̂ log p̂`` in nats of a table of counts."""
    c = counts[counts > 0].astype(float)
    n = c.sum()
    return float(math.log(n) - (c * np.log(c)).sum() / n)


@dataclass(frozen=True)
class DiscreteSide:
    """A discrete side: its name (``"x"`` or ``"y"``), codes, alphabet size and entropy."""

    name: str
    codes: np.ndarray
    #: distinct values among all n rows
    values: int
    #: Miller–Madow entropy of the side in nats, and its delta-method standard error
    entropy: float
    entropy_se: float

    def entropy_upper(self, z: float = 1.959963984540054) -> float:
        """The largest H the side can have on this evidence: ``min(Ĥ_MM + z·se, log K)`` (no variable
        of K values has more entropy than the uniform one)."""
        return min(self.entropy + z * self.entropy_se, math.log(self.values))


def entropy(labels: np.ndarray) -> tuple[float, float]:
    """``(Ĥ_MM, se)``: the Miller–Madow entropy in nats of the rows of ``labels`` and its delta-method
    standard error ``sd(log p̂(Y)) / √n`` (module docstring).

    >>> h, se = entropy(np.array([0, 1, 0, 1]))
    >>> round(h, 4), se  # log 2 + (2 − 1)/(2·4)
    (0.8181, 0.0)
    """
    code, _ = codes(labels)
    counts = np.bincount(code)
    n = len(code)
    logp = np.log(counts / n)[code]
    return float(plugin_entropy(counts) + (np.count_nonzero(counts) - 1) / (2.0 * n)), float(logp.std() / math.sqrt(n))


def contingency_table(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The ``(K_x, K_y)`` table of counts of the distinct rows of ``x`` against those of ``y``."""
    cx, kx = codes(x)
    cy, ky = codes(y)
    if len(cx) != len(cy):
        raise ValueError(f"x and y must have the same number of rows, got {len(cx)} and {len(cy)}")
    return np.bincount(cx * ky + cy, minlength=kx * ky).reshape(kx, ky)


def mutual_information_plugin(table: np.ndarray) -> float:
    """The plug-in ``Ĥ(X) + Ĥ(Y) − Ĥ(X, Y)`` of a table of counts, in nats."""
    table = np.asarray(table)
    return plugin_entropy(table.sum(1)) + plugin_entropy(table.sum(0)) - plugin_entropy(table.ravel())


def _f(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=float)
    return np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0)), 0.0)


def contingency_mi(table: np.ndarray) -> dict[str, float]:
    """The estimates of I(X; Y) from a table of counts (module docstring): ``mi`` (the jackknife),
    ``stderr``, ``plugin``, ``miller_madow`` and ``stderr_jackknife`` (before the floor).

    >>> r = contingency_mi(np.array([[40, 10], [10, 40]]))
    >>> round(r["plugin"], 4), r["mi"] < r["plugin"]
    (0.1927, True)
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or (t < 0).any() or t.sum() < 3:
        raise ValueError(f"a table of counts needs two dimensions, counts >= 0 and at least 3 rows of data, "
                         f"got shape {t.shape} with {t.sum():g} rows")
    n = t.sum()
    a, b = t.sum(1), t.sum(0)
    sx, sy, sxy = _f(a).sum(), _f(b).sum(), _f(t).sum()
    plugin = math.log(n) + (sxy - sx - sy) / n
    i, j = np.nonzero(t)
    c = t[i, j]
    # the plug-in MI without one row of cell (i, j): three counts go down by one
    loo = math.log(n - 1) + ((sxy - _f(c) + _f(c - 1)) - (sx - _f(a[i]) + _f(a[i] - 1))
                             - (sy - _f(b[j]) + _f(b[j] - 1))) / (n - 1)
    mean = float((c * loo).sum() / n)
    jack = n * plugin - (n - 1) * mean
    se_jack = math.sqrt(max(0.0, (n - 1) / n * float((c * (loo - mean) ** 2).sum())))
    kx, ky = np.count_nonzero(a), np.count_nonzero(b)
    df = (kx - 1) * (ky - 1)
    mm = plugin + ((kx - 1) + (ky - 1) - (len(c) - 1)) / (2.0 * n)
    return dict(mi=float(jack), stderr=max(se_jack, math.sqrt(2.0 * df) / (2.0 * n)), plugin=float(plugin),
                miller_madow=float(mm), stderr_jackknife=se_jack)


def pmf_mutual_information(pmf: np.ndarray) -> float:
    """The exact I(X; Y) in nats of a joint probability table ``pmf[i, j] = P(X=i, Y=j)``.

    >>> round(pmf_mutual_information(np.array([[0.5, 0.0], [0.0, 0.5]])), 6)  # log 2
    0.693147
    """
    p = np.asarray(pmf, dtype=float)
    if p.ndim != 2 or (p < 0).any() or not math.isclose(p.sum(), 1.0, rel_tol=1e-9):
        raise ValueError("a joint pmf must be a 2-D table of probabilities >= 0 that sum to 1")
    outer = p.sum(1, keepdims=True) * p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / outer[nz])).sum())


def _auto(k: int, n: int) -> bool:
    return 2 <= k <= AUTO_MAX_VALUES and n >= AUTO_ROWS_PER_VALUE * k


def discrete_sides(x: np.ndarray, y: np.ndarray, mode: str = "auto") -> dict[str, DiscreteSide]:
    """The discrete sides of ``(x, y)`` under ``discrete=mode`` (module docstring), by name.

    >>> rng = np.random.default_rng(0)
    >>> labels, z = rng.integers(0, 3, size=(500, 1)), rng.normal(size=(500, 2))
    >>> sorted(discrete_sides(z, labels)), sorted(discrete_sides(labels, labels)), discrete_sides(z, labels, "none")
    (['y'], ['x', 'y'], {})
    """
    if mode not in DISCRETE_CHOICES:
        raise ValueError(f"discrete must be one of {', '.join(map(repr, DISCRETE_CHOICES))}, got {mode!r}"
                         + check.did_you_mean(mode, DISCRETE_CHOICES))
    declared = {"x": ("x",), "y": ("y",), "both": ("x", "y")}.get(mode, ())
    found = {}
    for name, a in (("x", x), ("y", y)):
        code, k = codes(a)
        n = len(code)
        if name in declared and k * DECLARED_ROWS_PER_VALUE > n:
            raise ValueError(f"discrete={mode!r} declares {name} discrete, but its rows take {k} distinct values "
                             f"in {n} rows (at most n/{DECLARED_ROWS_PER_VALUE} = {n // DECLARED_ROWS_PER_VALUE} "
                             "make a discrete variable); use discrete='auto' or 'none' for continuous data")
        if name in declared or (mode == "auto" and _auto(k, n)):
            h, se = entropy(code)
            found[name] = DiscreteSide(name, code, k, h, se)
    return found
