"""mi-estimators: interchangeable neural mutual-information estimators for PyTorch.

>>> import torch, mi_estimators as mie
>>> bound = mie.get("infonce")
>>> scores = torch.randn(8, 8)
>>> float(bound(scores)) <= float(torch.log(torch.tensor(8.0)))
True
"""

from mi_estimators.bounds.base import Bound, BoundInfo
from mi_estimators.scores import ScoreShape
from mi_estimators.registry import (
    KINDS,
    PluginLoadError,
    UnknownNameError,
    available,
    entries,
    get,
    lookup,
    refresh,
    register,
    unregister,
)

__version__ = "0.1.0"

__all__ = [
    "Bound",
    "BoundInfo",
    "KINDS",
    "PluginLoadError",
    "ScoreShape",
    "UnknownNameError",
    "available",
    "entries",
    "estimate",
    "get",
    "lookup",
    "refresh",
    "register",
    "unregister",
]


def __getattr__(name: str):
    # estimate() pulls in the training loop; import it on first use only.
    if name == "estimate":
        from mi_estimators.estimation import estimate

        return estimate
    raise AttributeError(f"module 'mi_estimators' has no attribute {name!r}")
