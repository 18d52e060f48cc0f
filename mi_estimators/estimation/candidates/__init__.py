"""The candidates of :func:`mi_estimators.estimate`, one module each, all following
:class:`~mi_estimators.estimation.candidates.base.Candidate` (fit on the training rows, score on the
monitor rows, refit on a fold, read out):

* :mod:`~mi_estimators.estimation.candidates.copula`: closed-form Student-t and Gaussian copula
  critics, reduced to their leading canonical pairs, read out by DV;
* :mod:`~mi_estimators.estimation.candidates.trained`: a neural critic trained with the chosen bound
  (on the copula's canonical variates for wide low-rank data; averaged over seeds with ``ensemble``);
* :mod:`~mi_estimators.estimation.candidates.narrow`: on 1+1 columns, the separable critic trained
  beside the concat critic, the monitor split choosing;
* :mod:`~mi_estimators.estimation.candidates.reduced`: the trained critic on ridge-CCA variates, for
  inputs too wide for the copula candidate;
* :mod:`~mi_estimators.estimation.candidates.discrete`: where a side is discrete, a classifier of it
  from the other side, read out by the Barber–Agakov bound ``H(Y) − CE``.
"""

from mi_estimators.estimation.candidates.base import Candidate, Context, choose
from mi_estimators.estimation.candidates.copula import CopulaCandidate
from mi_estimators.estimation.candidates.trained import TrainedCandidate

__all__ = ["Candidate", "Context", "CopulaCandidate", "TrainedCandidate", "choose"]
