r"""A lower bound on I(X; Y) for a discrete Y certified by a held-out classifier.

For any conditional law ``q(y | x)`` the cross-entropy ``CE = E[−log q(Y | X)]`` is at least the
conditional entropy ``H(Y | X)`` (their difference is ``E[KL(p(·|X) ‖ q(·|X))] >= 0``), so

    I(X; Y) = H(Y) − H(Y | X) >= H(Y) − CE

(Barber & Agakov 2003, "The IM algorithm: a variational approach to information maximization",
NeurIPS; McAllester & Stratos 2020, "Formal limitations on the measurement of mutual
information", AISTATS, arXiv:1811.04251). A softmax classifier fitted on part of
the rows and scored on the others gives an unbiased estimate of its CE, with a standard error; the
plug-in entropy of the labels estimates ``H(Y)``. Used by the classifier check of
:mod:`mi_estimators.validation.consistency`.

>>> import numpy as np
>>> labels = np.array([0, 1, 0, 1])
>>> c = certificate(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]), labels[:2], labels)
>>> round(c.entropy, 4), round(c.cross_entropy, 4), c.accuracy
(0.6931, 0.1643, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mi_estimators import options as check
from mi_estimators.discrete import plugin_entropy

__all__ = ["CLASSIFIERS", "UNIFORM_MIX", "Certificate", "certificate", "certified_bound", "classifier_model",
           "label_entropy"]

#: the classifiers of the certified bound: name -> scikit-learn model
CLASSIFIERS = {
    "logistic": "multinomial logistic regression (L2, C = 0.1)",
    "mlp": "MLP classifier, one hidden layer of 256 ReLU units (alpha = 1e-3, early stopping)",
}
#: mixing weight of the uniform law in the classifier's q(y|x): keeps −log q finite for a class
#: the classifier rules out, and q a probability distribution, so the bound stays valid
UNIFORM_MIX = 1e-6


@dataclass(frozen=True)
class Certificate:
    """``value = entropy − cross_entropy``, a lower bound on I(X; Y) (module docstring)."""

    classifier: str
    #: plug-in entropy of the labels of all rows, nats
    entropy: float
    #: mean −log q(y|x) over the held-out rows, and its standard error (sd / sqrt(n_test))
    cross_entropy: float
    stderr: float
    accuracy: float
    n_train: int
    n_test: int

    @property
    def value(self) -> float:
        return self.entropy - self.cross_entropy


def label_entropy(labels: np.ndarray) -> float:
    """Plug-in entropy ``−Σ p_k log p_k`` of the label frequencies, nats."""
    return plugin_entropy(np.unique(np.asarray(labels), return_counts=True)[1])


def certificate(proba: np.ndarray, classes: np.ndarray, labels: np.ndarray, all_labels: np.ndarray,
                classifier: str = "", n_train: int = 0) -> Certificate:
    """The certified bound from a classifier's held-out probabilities ``proba`` ``(m, len(classes))``
    for the held-out ``labels`` ``(m,)``: ``q = (1 − ε)·proba + ε/K`` over the ``K`` classes seen in
    ``all_labels`` (ε = :data:`UNIFORM_MIX`; a class the classifier never saw gets ``ε/K``),
    ``CE = mean(−log q(y_i | x_i))``, ``H`` the plug-in entropy of ``all_labels``."""
    known = np.unique(all_labels)
    q = np.zeros((len(labels), len(known)))
    q[:, np.searchsorted(known, classes)] = proba
    q = (1.0 - UNIFORM_MIX) * q + UNIFORM_MIX / len(known)
    picked = q[np.arange(len(labels)), np.searchsorted(known, labels)]
    nll = -np.log(picked)
    se = float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else math.inf
    accuracy = float(np.mean(known[q.argmax(1)] == labels))
    return Certificate(classifier, label_entropy(all_labels), float(nll.mean()), se, accuracy, n_train, len(labels))


def classifier_model(name: str, seed: int = 0):
    """A fresh scikit-learn classifier of :data:`CLASSIFIERS` (``seed`` fixes the MLP's initialisation)."""
    check.check_known([name], list(CLASSIFIERS), "unknown classifier")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:  # pragma: no cover - scikit-learn comes with the train extra
        raise ImportError("the classifier check needs scikit-learn: pip install 'mi-estimators[train]'") from exc
    if name == "logistic":
        return LogisticRegression(C=0.1, max_iter=1000)
    return MLPClassifier((256,), alpha=1e-3, early_stopping=True, random_state=seed)


def certified_bound(features: np.ndarray, labels: np.ndarray, classifier: str = "logistic", holdout: float = 0.3,
                    seed: int = 0) -> Certificate:
    """Fit ``classifier`` (:data:`CLASSIFIERS`) on a random ``1 − holdout`` of the rows and certify
    ``I(features; labels) >= H(labels) − CE`` on the other rows (:func:`certificate`)."""
    labels = np.asarray(labels)
    perm = np.random.default_rng(seed).permutation(len(labels))
    m = int(round(holdout * len(labels)))
    if m < 2 or len(labels) - m < 2:
        raise ValueError(f"holdout={holdout} of {len(labels)} rows leaves too few rows to fit or to score")
    test, train = perm[:m], perm[m:]
    model = classifier_model(classifier, seed).fit(features[train], labels[train])
    return certificate(model.predict_proba(features[test]), model.classes_, labels[test], labels, classifier,
                       len(train))
