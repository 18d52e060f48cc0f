"""Augmented Multiscale Deep InfoMax (AMDIM) for mi-estimators.

Bachman, Hjelm & Buchwalter, "Learning Representations by Maximizing Mutual Information Across
Views", NeurIPS 2019, arXiv:1906.00910.

* :mod:`~mi_estimators_amdim.encoder`: the multiscale encoder (registered as encoder ``amdim``),
  exposing f1 (global vector), f5 and f7 (local maps).
* :mod:`~mi_estimators_amdim.objective`: the 1→7, 1→5, 5→5 NCE between two augmented views, on the
  core's memory-efficient NCE, with the mixture representations of eqs. 18–19.
* :mod:`~mi_estimators_amdim.trainer`: the trainer ``amdim`` (``mi-estimators train amdim``), on the
  core's trainer kit.
"""

from mi_estimators_amdim.encoder import AMDIMEncoder
from mi_estimators_amdim.objective import MultiscaleNCE

__all__ = ["AMDIMEncoder", "MultiscaleNCE"]
