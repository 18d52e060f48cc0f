"""Closed-form tasks: joint distributions whose mutual information is known exactly.

Families (each derives ``mi`` in its docstring):

* :class:`GaussianTask` — per-dimension correlation (:meth:`~GaussianTask.correlated`,
  :meth:`~GaussianTask.from_mi`), any covariance, BMI's dense/sparse interactions
  (:meth:`~GaussianTask.structured`);
* :class:`TransformedTask` — invertible marginal transforms (cubic, halfcube, asinh, normal_cdf)
  of any task, same MI;
* :class:`StudentTTask` — multivariate Student-t, Gaussian term plus an entropy correction;
* :class:`AdditiveUniformTask` — Y = X + uniform noise.

Preconfigured tasks with stable ids live in :mod:`mi_estimators.tasks.catalog` and are registered
as kind ``tasks``:

>>> import mi_estimators as mie
>>> task = mie.get("gauss-1x1-mi0.5", kind="tasks")
>>> x, y = task.sample(1000, seed=0)
>>> round(task.mi, 3), x.shape
(0.5, (1000, 1))
"""

from mi_estimators.tasks.base import Task, as_generator
from mi_estimators.tasks.catalog import CATALOG, QUICK
from mi_estimators.tasks.gaussian import GaussianTask, rho_for_mi
from mi_estimators.tasks.student import StudentTTask
from mi_estimators.tasks.transformed import TRANSFORMS, Transform, TransformedTask
from mi_estimators.tasks.uniform import AdditiveUniformTask, additive_uniform_mi

__all__ = ["AdditiveUniformTask", "CATALOG", "GaussianTask", "QUICK", "StudentTTask", "TRANSFORMS", "Task",
           "Transform", "TransformedTask", "additive_uniform_mi", "as_generator", "rho_for_mi"]
