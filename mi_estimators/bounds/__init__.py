"""MI bounds, one file per family. Look them up by name: ``mi_estimators.get("infonce")``.

Each bound maps a score matrix ``scores[i, j] = T(x_i, y_j)`` (positives on the diagonal) to an
MI estimate in nats; see :mod:`mi_estimators.scores` for the convention.
"""

from mi_estimators.bounds.base import Bound, BoundInfo, value_and_loss
from mi_estimators.scores import ScoreShape, check_scores, finite_checks, finite_checks_enabled

__all__ = ["Bound", "BoundInfo", "ScoreShape", "check_scores", "finite_checks", "finite_checks_enabled",
           "value_and_loss"]
