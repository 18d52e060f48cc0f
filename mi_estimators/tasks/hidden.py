"""A task hidden in high dimension: a base task's sample padded with independent N(0, 1) columns and
each side turned by a fixed random rotation.

For a base task's ``(X, Y)`` of widths ``(d_x, d_y)``, independent ``N ~ N(0, I_{D_x − d_x})`` and
``M ~ N(0, I_{D_y − d_y})`` (independent of each other and of ``(X, Y)``) and fixed orthogonal
``Q_x`` ``(D_x, D_x)``, ``Q_y`` ``(D_y, D_y)``,

.. math::

    X' = [X, N]\\, Q_x, \\qquad Y' = [Y, M]\\, Q_y .

* **MI.** By the chain rule, I([X, N]; [Y, M]) = I(X; Y) + I(N; Y | X) + I([X, N]; M | Y) = I(X; Y), the
  last two terms 0 by independence; an orthogonal map is invertible, so it changes no MI
  (:mod:`mi_estimators.tasks.transformed`). Hence I(X'; Y') = I(X; Y), the base task's.
* **Density ratio.** The independent columns factor out of ``p(x, n, y, m) / (p(x, n) p(y, m))`` and
  the rotations have unit Jacobian: ``log r'(x', y') = log r_base((x' Q_xᵀ)[:, :d_x], (y' Q_yᵀ)[:, :d_y])``.
* **The dependence lives in a subspace:** the first ``d_x`` rows of ``Q_x`` (:attr:`HiddenTask.x_directions`)
  span the directions of ``X'`` that carry it; the rest is independent noise. When the base marginals are
  N(0, I) (the bmi 2-pair Gaussians and their spirals, :mod:`mi_estimators.tasks.spiral`) each side of the
  hidden task is N(0, I) too: no marginal statistic finds the subspace, only the dependence does.

The rotations are Haar-distributed (the Q of the QR decomposition of a standard Gaussian matrix, with the
signs of R's diagonal moved into Q: Mezzadri 2007, "How to generate random matrices from the classical
compact groups", Notices AMS 54:592), drawn once from ``rotation_seed``: a task is a fixed distribution.
"""

from __future__ import annotations

import numpy as np

from mi_estimators.options import integer
from mi_estimators.tasks.base import InvariantTask, Task, check_pair

__all__ = ["HiddenTask", "haar_rotation"]


def haar_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal ``(dim, dim)`` matrix (module docstring)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


class HiddenTask(InvariantTask):
    """The ``base`` task's ``(X, Y)`` padded with independent N(0, 1) columns to ``x_dim`` and ``y_dim``
    columns and each side multiplied by a fixed Haar rotation drawn from ``rotation_seed``; same MI as
    ``base`` (module docstring).

    >>> from mi_estimators.tasks import GaussianTask
    >>> task = HiddenTask(GaussianTask.from_mi(0.5, 1), 10, 10)
    >>> x, y = task.sample(4, seed=0)
    >>> x.shape, round(task.mi, 6), task.id
    ((4, 10), 0.5, 'hidden-gauss-1x1-mi0.5-10x10')
    """

    def __init__(self, base: Task, x_dim: int, y_dim: int, rotation_seed: int = 0, id: str | None = None):
        for name, dim, inner in (("x_dim", x_dim, base.x_dim), ("y_dim", y_dim, base.y_dim)):
            integer(name, dim, minimum=inner, hint=f" (at least the base task's {inner} columns)")
        integer("rotation_seed", rotation_seed, minimum=0)
        self.base = base
        self.x_dim, self.y_dim = int(x_dim), int(y_dim)
        rng = np.random.default_rng(rotation_seed)
        #: the fixed rotations ``Q_x`` ``(x_dim, x_dim)`` and ``Q_y`` ``(y_dim, y_dim)``
        self.qx, self.qy = haar_rotation(self.x_dim, rng), haar_rotation(self.y_dim, rng)
        self.id = id or f"hidden-{base.id}-{self.x_dim}x{self.y_dim}"

    @property
    def x_directions(self) -> np.ndarray:
        """``(base.x_dim, x_dim)``: the orthonormal rows spanning the directions of X that carry the
        dependence; ``x @ x_directions.T`` is the base task's X."""
        return self.qx[:self.base.x_dim]

    @property
    def y_directions(self) -> np.ndarray:
        """``(base.y_dim, y_dim)``: as :attr:`x_directions`, for Y."""
        return self.qy[:self.base.y_dim]

    def _sample(self, n, rng):
        x, y = self.base.sample(n, rng)
        x = np.hstack([x, rng.standard_normal((n, self.x_dim - self.base.x_dim))])
        y = np.hstack([y, rng.standard_normal((n, self.y_dim - self.base.y_dim))])
        return x @ self.qx, y @ self.qy

    def log_density_ratio(self, x, y) -> np.ndarray:
        x, y = check_pair(x, y, self.x_dim, self.y_dim)
        return self.base.log_density_ratio(x @ self.x_directions.T, y @ self.y_directions.T)
