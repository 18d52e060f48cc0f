"""Closed-form tasks: joint distributions whose mutual information is known exactly.

Families (each derives ``mi`` in its docstring):

* :class:`GaussianTask` — per-dimension correlation (:meth:`~GaussianTask.correlated`,
  :meth:`~GaussianTask.from_mi`), any covariance, BMI's dense/sparse interactions
  (:meth:`~GaussianTask.structured`);
* :class:`TransformedTask` — invertible transforms of each side of any task, same MI:
  elementwise (cubic, halfcube, asinh, normal_cdf, and Czyż et al.'s wiggly and bimodal maps,
  :mod:`~mi_estimators.tasks.marginals`), the :class:`Spiral` (:func:`spiral_task`) and the
  :class:`SwissRoll` embedding (:func:`swiss_roll_task`);
* :class:`HiddenTask` — any task padded with independent N(0, 1) columns and each side rotated at
  random: same MI, the dependence hidden in a few directions of many;
* :class:`StudentTTask` — multivariate Student-t, Gaussian term plus an entropy correction;
* :class:`AdditiveUniformTask` — Y = X + uniform noise, in any number of independent copies;
* :class:`GaussianMixtureTask` — mixtures of Gaussians: exact density ratio, MI by Monte Carlo
  with its standard error ``mi_stderr``; Czyż et al.'s X, AI, galaxy, waves, concentric and
  inlier families (:mod:`~mi_estimators.tasks.mixture_families`).

The catalogue's module doc has the table of families and ids; :data:`BMI` maps the ids that
reproduce a task of Czyż et al.'s benchmark to that task's id; :data:`BENCHMARK_V2` lists the ids of
the 26 tasks of its second version.

Preconfigured tasks with stable ids live in :mod:`mi_estimators.tasks.catalog` and are registered
as kind ``tasks``:

>>> import mi_estimators as mie
>>> task = mie.get("gauss-1x1-mi0.5", kind="tasks")
>>> x, y = task.sample(1000, seed=0)
>>> round(task.mi, 3), x.shape
(0.5, (1000, 1))
"""

from mi_estimators.tasks.base import SideMap, Task, Transform, as_generator
from mi_estimators.tasks.catalog import BENCHMARK_V2, BMI, CATALOG
from mi_estimators.tasks.gaussian import GaussianTask, rho_for_mi
from mi_estimators.tasks.hidden import HiddenTask, haar_rotation
from mi_estimators.tasks.marginals import bimodal, wiggly
from mi_estimators.tasks.mixtures import GaussianMixtureTask
from mi_estimators.tasks.spiral import Spiral, spiral_task
from mi_estimators.tasks.student import StudentTTask
from mi_estimators.tasks.swissroll import SwissRoll, swiss_roll_task
from mi_estimators.tasks.transformed import TRANSFORMS, TransformedTask
from mi_estimators.tasks.uniform import AdditiveUniformTask, additive_uniform_mi

__all__ = ["AdditiveUniformTask", "BENCHMARK_V2", "BMI", "CATALOG", "GaussianMixtureTask", "GaussianTask", "HiddenTask",
           "SideMap", "Spiral", "StudentTTask", "SwissRoll", "TRANSFORMS", "Task", "Transform", "TransformedTask",
           "additive_uniform_mi", "as_generator", "bimodal", "haar_rotation", "rho_for_mi", "spiral_task",
           "swiss_roll_task", "wiggly"]
