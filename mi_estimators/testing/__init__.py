"""Property-based tests for MI bounds, critics, encoders and tasks, for this package and its plugins.

``pip install mi-estimators[testing]`` (it brings `hypothesis <https://hypothesis.readthedocs.io>`_).
Two parts, usable in any pytest suite:

* **Strategies** (:mod:`mi_estimators.testing.strategies`): score tensors of every layout a bound
  takes, with extremes (±1e4) and ties; closed-form tasks (the registered ones, and random
  Gaussians with a chosen MI); paired samples; the optimal critic of a task on every pair.
* **Conformance checks**, one call each: :func:`check_bound`, :func:`check_critic`,
  :func:`check_encoder` and :func:`check_task`. Each runs every property of its kind's contract
  (``BOUND_PROPERTIES`` and friends name them) with a few well-chosen hypothesis examples, and
  raises :class:`ConformanceError` naming the property, the entry (``distribution[name]`` when
  checked by registry name, else the class), the minimal failing example and a one-line hint of
  what to fix. Error messages are judged by what they show, never by their words: a bad input
  must raise ``ValueError`` whose message contains the offending shape, dtype or value as
  printed. Bounds are held to closed-form MI whether or not they declare ``info`` (one that does
  not is taken for a lower bound), with tolerances derived in
  :mod:`mi_estimators.testing.bound_truth`.

A check takes a registry name (``"infonce"``: looked up like ``mi_estimators.get``) or a factory
(a class or function), plus the factory's keyword options, and a few keyword-only settings of its
own (``settings=`` a :class:`hypothesis.settings` used for every property, ``skip=`` property
names to leave out). Call them from a plain test, not from inside a ``@given`` test.

>>> from mi_estimators.testing import check_bound
>>> check_bound("infonce", clip=20.0)        # silent when every property holds
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "mi_estimators.testing needs hypothesis, which the core package does not install: "
        "pip install mi-estimators[testing]"
    ) from exc

from mi_estimators.testing._core import ConformanceError
from mi_estimators.testing.bounds import BOUND_PROPERTIES, check_bound
from mi_estimators.testing.critics import CRITIC_PROPERTIES, check_critic
from mi_estimators.testing.encoders import ENCODER_PROPERTIES, check_encoder
from mi_estimators.testing.tasks import TASK_PROPERTIES, check_task

__all__ = ["BOUND_PROPERTIES", "CRITIC_PROPERTIES", "ConformanceError", "ENCODER_PROPERTIES",
           "TASK_PROPERTIES", "check_bound", "check_critic", "check_encoder", "check_task"]
