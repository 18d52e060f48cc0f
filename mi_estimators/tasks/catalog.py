"""The catalogue: preconfigured tasks with stable ids, registered as entry points (kind ``tasks``).

``mi_estimators.get("gauss-5x5-mi1", kind="tasks")`` returns a fresh task. The ids never change
meaning; a new configuration gets a new id. Each id is declared in ``pyproject.toml`` under
``[project.entry-points."mi_estimators.tasks"]`` pointing at the factory of the same name here
(dashes and dots spelled ``_``).
"""

from __future__ import annotations

import re
from typing import Callable

from mi_estimators.tasks.base import Task
from mi_estimators.tasks.gaussian import GaussianTask
from mi_estimators.tasks.student import StudentTTask
from mi_estimators.tasks.transformed import TransformedTask
from mi_estimators.tasks.uniform import AdditiveUniformTask

__all__ = ["CATALOG", "QUICK", "attribute_name"]


def _gauss(mi, d):
    return lambda: GaussianTask.from_mi(mi, d)


#: id -> (builder, one-line summary)
_SPECS: dict[str, tuple[Callable[[], Task], str]] = {
    "gauss-1x1-mi0.5": (_gauss(0.5, 1), "1-d Gaussian pair, 0.5 nats"),
    "gauss-2x2-mi1": (_gauss(1.0, 2), "2 correlated Gaussian pairs, 1 nat"),
    "gauss-5x5-mi2": (_gauss(2.0, 5), "5 correlated Gaussian pairs, 2 nats"),
    "gauss-dense-5x5": (lambda: GaussianTask.structured(5, 5, corr=0.5, off_diag=0.5),
                        "5+5-d Gaussian, every X-Y and within-block correlation 0.5 (BMI dense)"),
    "gauss-sparse-5x5": (lambda: GaussianTask.structured(5, 5, corr=0.8, n_interacting=2, off_diag=0.1),
                         "5+5-d Gaussian, 2 interacting pairs of correlation 0.8 (BMI sparse)"),
    "cubic-gauss-1x1-mi0.5": (lambda: TransformedTask(GaussianTask.from_mi(0.5, 1), "cubic"),
                              "1-d Gaussian, 0.5 nats, both sides cubed"),
    "halfcube-gauss-3x3-mi1": (lambda: TransformedTask(GaussianTask.from_mi(1.0, 3), "halfcube"),
                               "3 Gaussian pairs, 1 nat, x*sqrt|x| on both sides"),
    "asinh-student-t-2x2-df1": (lambda: TransformedTask(StudentTTask.identity(2, 2, df=1), "asinh"),
                                "2+2-d Cauchy (t, df 1, identity dispersion) under asinh"),
    "normalcdf-gauss-5x5-mi1": (lambda: TransformedTask(GaussianTask.from_mi(1.0, 5), "normal_cdf"),
                                "5 Gaussian pairs, 1 nat, through the normal CDF (values in (0, 1))"),
    "student-t-2x2-df2": (lambda: StudentTTask.identity(2, 2, df=2),
                          "2+2-d Student-t, df 2, identity dispersion (dependent, uncorrelated)"),
    "student-t-2x2-df5-rho0.5": (lambda: StudentTTask.correlated(2, 0.5, df=5),
                                 "2 Student-t pairs, df 5, dispersion correlation 0.5"),
    "uniform-eps0.1": (lambda: AdditiveUniformTask(0.1), "Y = X + U(-0.1, 0.1), X ~ U(0, 1)"),
    "uniform-eps0.75": (lambda: AdditiveUniformTask(0.75), "Y = X + U(-0.75, 0.75), X ~ U(0, 1)"),
    "gauss-20x20-mi10": (_gauss(10.0, 20), "20 correlated Gaussian pairs, 10 nats (hard)"),
}

#: the tasks `mi-estimators validate --quick` runs (a cross-section of the families)
QUICK = ("gauss-5x5-mi2", "cubic-gauss-1x1-mi0.5", "student-t-2x2-df2", "uniform-eps0.1")


def attribute_name(task_id: str) -> str:
    """The factory's attribute name for an id: ``gauss-1x1-mi0.5`` -> ``gauss_1x1_mi0_5``."""
    return re.sub(r"[^0-9a-zA-Z]", "_", task_id)


def _factory(task_id: str, build: Callable[[], Task], summary: str) -> Callable[[], Task]:
    def make() -> Task:
        task = build()
        task.id = task_id
        return task

    make.__name__ = make.__qualname__ = attribute_name(task_id)
    make.__doc__ = f"{summary}.\n\nThe task ``{task_id}``; see its class for the closed-form MI."
    return make


#: id -> factory (no arguments) returning a fresh task
CATALOG: dict[str, Callable[[], Task]] = {i: _factory(i, b, s) for i, (b, s) in _SPECS.items()}
globals().update({f.__name__: f for f in CATALOG.values()})
