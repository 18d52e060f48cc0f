r"""Self-consistency checks of :func:`mi_estimators.estimate` on real images, where no closed form exists.

Song & Ermon (2020, "Understanding the limitations of variational mutual information estimators",
ICLR, arXiv:1910.06222, §6) test estimators on images by properties every mutual information has,
whatever the data. This suite runs four such checks on the first ``n`` training images of
Fashion-MNIST (or any MNIST-format IDX files, or scikit-learn's 8x8 digits). The pairs have finite
MI: ``X`` is the top half of an image and ``Y`` its bottom half, pixels / 255, flattened (Song &
Ermon pair an image with a masked copy of itself, whose MI is infinite for continuous pixels:
``estimate()`` answers ``inf`` for a side that determines a column of the other).

1. **Independence.** Shuffling the rows of ``Y`` makes the sides independent: ``I(X; π(Y)) = 0``.
2. **Data processing.** For any function ``g``, ``I(g(X); Y) <= I(X; Y)`` (Cover & Thomas 2006,
   Theorem 2.8.1); ``g`` blurs, crops or downsamples the top half.
3. **Additivity.** For independent pairs, ``I([X1, X2]; [Y1, Y2]) = I(X1; Y1) + I(X2; Y2)``:
   ``(X1, Y1)`` the top and bottom ``strip`` pixel rows (7 of 28) of the first ``n/2`` images,
   ``(X2, Y2)`` the left and right ``strip`` columns of the next ``n/2``, row ``i`` of one beside row
   ``i`` of the other. Not the halves: their two MIs add up to about 7 nats on Fashion-MNIST, more
   than ``log 500 = 6.2``, the most an InfoNCE read-out of a cross-fitted fold of ``n/10`` rows can
   show (InfoNCE <= log N on N rows; Poole et al. 2019, arXiv:1905.06922), so the joint estimate
   was capped below the sum whatever the critic; the strips' sum (about 3.8 nats) is under the cap.
4. **A classifier-certified lower bound** (image -> label). For any conditional law ``q(y | x)``
   the cross-entropy ``CE = E[-log q(Y | X)] >= H(Y | X)``, so
   ``I(X; Y) = H(Y) - H(Y | X) >= H(Y) - CE`` (Barber & Agakov 2003, "The IM algorithm", NeurIPS);
   a softmax classifier fitted on part of the rows and scored on the others certifies that value,
   up to the held-out sampling error. And ``I(X; Y) <= H(Y)`` for a discrete ``Y``.

Every check is one inequality ``lhs <= rhs + tolerance``, with
``tolerance = z * sqrt(sum of the squared standard errors involved) + atol + rtol * |expected|``
(``expected`` is the value an equality predicts, 0 for inequalities): see :class:`Check`. The
standard errors are those :func:`~mi_estimators.estimate` reports; two estimates on the same rows
have positively correlated errors, so adding their variances overstates the error of a difference
and the tests are lenient, not strict, on that account.

>>> tol = Tolerance(z=2.0, atol=0.02, rtol=0.1)
>>> round(tol(0.03, 0.04, expected=1.0), 6)  # 2 * sqrt(0.03² + 0.04²) + 0.02 + 0.1 * 1
0.22
>>> Check("independence", "I(top; shuffled bottom) = 0", "|Î| <= z·se + atol", 0.03, 0.0, tol(0.01), ()).passed
True

``run_consistency(ConsistencyConfig())`` runs the suite on Fashion-MNIST (minutes on one thread);
``studies/run_consistency.py`` writes its report.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mi_estimators import options as check
from mi_estimators.columns import DegenerateColumnsWarning
from mi_estimators.validation.certified import CLASSIFIERS, certified_bound, label_entropy

__all__ = ["CHECKS", "MEANING", "PROCESSINGS", "Check", "ConsistencyConfig", "ConsistencyReport", "Reading",
           "Tolerance", "additivity_check", "classifier_checks", "estimator", "halves", "independence_check",
           "load_images", "process", "processing_checks", "run_consistency"]

#: the checks, in the order they run
CHECKS = ("independence", "processing", "additivity", "classifier")
#: the processings ``g`` of the data-processing check: name -> what it does to the top half
PROCESSINGS = {
    "blur": "Gaussian blur, sigma = 1 pixel",
    "crop": "the outer columns cropped (a seventh of the width on each side)",
    "downsample": "2x2 average pooling (half the resolution)",
}
#: what each check means, in words (the report's explanation)
MEANING = {
    "independence": "Shuffling the rows of one side makes the two sides independent, so the mutual information is "
                    "exactly 0. The estimate must read 0 within its error: |Î| <= z·se + atol.",
    "processing": "Data-processing inequality (Cover & Thomas 2006, Theorem 2.8.1): no function g of X can hold more "
                  "information about Y than X does, I(g(X); Y) <= I(X; Y). An estimate that reads more on the "
                  "processed side failed to extract from X what g(X) shows it contains. Test: Î(g(X); Y) − Î(X; Y) "
                  "<= z·√(se_g² + se_X²) + atol.",
    "additivity": "For independent pairs, I([X1, X2]; [Y1, Y2]) = I(X1; Y1) + I(X2; Y2). (X1, Y1) are the top and "
                  "bottom strips (the first and last `strip` pixel rows) of the first n/2 images, (X2, Y2) the left "
                  "and right strips of the next n/2, row i beside row i. Strips, not halves: the halves' MIs add up "
                  "to more than log of the rows a cross-fitted fold reads out, which caps an InfoNCE read-out. "
                  "Test: |Î_joint − (Î1 + Î2)| <= z·√(se_J² + se_1² + se_2²) + atol + rtol·(Î1 + Î2); "
                  "the ratio Î_joint / (Î1 + Î2) should be 1. A ratio below 1: the estimator reads less of the "
                  "wider joint problem than of its two parts (its values are lower bounds, and lose more with "
                  "dimension); above 1: it reads information that is not there.",
    "classifier": "For any classifier q(y|x), its cross-entropy CE = E[−log q(Y|X)] >= H(Y|X), so I(image; label) "
                  ">= H(label) − CE (Barber & Agakov 2003). Each classifier is fitted on part of the rows and its CE "
                  "measured on the others: H − CE is a value the data certify. Tests: H − CE − Î <= z·√(se_Î² + "
                  "se_CE²) + atol (the estimate is not below the certified value) and Î − H <= z·se_Î + atol "
                  "(I <= H(label) for a discrete label). An estimate below the certified value is too low by at "
                  "least the margin: the data already certify more.",
}


@dataclass(frozen=True)
class Tolerance:
    """``tolerance(stderrs, expected) = z * sqrt(sum se^2) + atol + rtol * |expected|`` in nats."""

    z: float = 2.0
    atol: float = 0.02
    rtol: float = 0.1

    def __call__(self, *stderrs: float, expected: float = 0.0) -> float:
        return self.z * math.sqrt(sum(s * s for s in stderrs)) + self.atol + self.rtol * abs(expected)


@dataclass(frozen=True)
class ConsistencyConfig:
    """What :func:`run_consistency` runs; the defaults are the Fashion-MNIST run of ``studies/consistency``."""

    #: images used: the first n of the training split
    n: int = 5000
    #: fashion-mnist, mnist, idx (MNIST-format files in --data-dir) or digits (scikit-learn's 8x8)
    dataset: str = "fashion-mnist"
    #: directory of the IDX files (none: /usr/share/datasets/<dataset>)
    data_dir: str | None = None
    #: which checks to run: independence, processing, additivity, classifier
    checks: tuple[str, ...] = CHECKS
    #: the additivity check's pairs: the first and last this many pixel rows (and columns) of each image
    #: (none: a quarter of the height and of the width, 7 of 28)
    strip: int | None = None
    #: the processings of the data-processing check: blur, crop, downsample
    processings: tuple[str, ...] = tuple(PROCESSINGS)
    #: the classifiers certifying the image -> label bound: logistic, mlp
    classifiers: tuple[str, ...] = tuple(CLASSIFIERS)
    #: fraction of the rows the classifiers are scored on (they are fitted on the rest)
    holdout: float = 0.3
    #: estimate() training steps
    steps: int = 2000
    #: further estimate() options, KEY=VALUE (e.g. ensemble=3)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: seed of estimate(), of the shuffle and of the classifiers' split
    seed: int = 0
    #: torch and BLAS threads (none: as they are)
    threads: int | None = 1
    #: standard errors in the tolerance (z * sqrt(sum of squared stderrs))
    z: float = 2.0
    #: absolute slack of every check, in nats
    atol: float = 0.02
    #: relative slack of the equalities (additivity), times the expected value
    rtol: float = 0.1
    #: a tqdm bar (none: when stderr is a terminal)
    progress: bool | None = None

    def __post_init__(self) -> None:
        from mi_estimators.estimation import EstimateOptions

        for name, known in (("checks", CHECKS), ("processings", PROCESSINGS), ("classifiers", CLASSIFIERS)):
            value = getattr(self, name)
            value = (value,) if isinstance(value, str) else tuple(value)
            object.__setattr__(self, name, value)
            check.check_known(value, list(known), f"{name}: unknown")
        check.positive_int("n", self.n)
        check.optional(check.positive_int, "strip", self.strip)
        check.positive_int("steps", self.steps)
        check.integer("seed", self.seed, 0)
        check.optional(check.positive_int, "threads", self.threads)
        check.unit_interval_float("holdout", self.holdout, open_left=True, open_right=True)
        for name in ("z", "atol", "rtol"):
            check.non_negative_float(name, getattr(self, name))
        object.__setattr__(self, "options", dict(self.options or {}))
        taken = {"steps", "seed", "threads", "progress"} & set(self.options)
        if taken:
            raise ValueError(f"options may not set {sorted(taken)}: they are fields of ConsistencyConfig")
        EstimateOptions.from_kwargs(**self.options)  # an unknown or bad option fails here, not minutes later
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True, False or None (when stderr is a terminal), got {self.progress!r}")

    @property
    def tolerance(self) -> Tolerance:
        return Tolerance(self.z, self.atol, self.rtol)


@dataclass(frozen=True)
class Reading:
    """One value with its standard error: an estimate, a certified bound or an entropy (stderr 0)."""

    label: str
    value: float
    stderr: float
    #: estimate()'s 95% interval (None for a value that is no estimate)
    ci: tuple[float, float] | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    #: what produced it (the chosen critic, the classifier and its accuracy, ...)
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """One tested inequality ``lhs <= rhs + tolerance``; ``margin = rhs + tolerance - lhs`` (passes at >= 0)."""

    family: str
    name: str
    #: the inequality, in symbols
    test: str
    lhs: float
    rhs: float
    tolerance: float
    readings: tuple[Reading, ...]
    #: additivity: joint / sum
    ratio: float | None = None

    @property
    def margin(self) -> float:
        return self.rhs + self.tolerance - self.lhs

    @property
    def passed(self) -> bool:
        return bool(self.margin >= 0)  # nan (an estimate failed) does not pass

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "margin": self.margin, "passed": self.passed}


@dataclass(frozen=True)
class ConsistencyReport:
    """What :func:`run_consistency` found: the checks and how the run was set up."""

    config: ConsistencyConfig
    checks: tuple[Check, ...]
    #: dataset, data directory, image shape, rows, wall and CPU seconds, command
    settings: Mapping[str, Any]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return dict(config=dataclasses.asdict(self.config), settings=dict(self.settings), passed=self.passed,
                    checks=[c.to_dict() for c in self.checks])


Estimator = Callable[[np.ndarray, np.ndarray, str], Reading]


def estimator(config: ConsistencyConfig) -> Estimator:
    """``(x, y, label) -> Reading``: :func:`mi_estimators.estimate` with the config's options, timed
    (wall and CPU seconds); the warnings about constant or discrete determined columns (expected
    for pixels) are kept in ``detail``, not printed."""
    from mi_estimators.estimation import estimate

    def measure(x: np.ndarray, y: np.ndarray, label: str) -> Reading:
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DegenerateColumnsWarning)
            r = estimate(x, y, steps=config.steps, seed=config.seed, threads=config.threads, progress=False,
                         **config.options)
        notes = [str(w.message).split(":")[0] for w in caught if issubclass(w.category, DegenerateColumnsWarning)]
        detail = r.settings.degenerate or r.settings.chosen_description
        return Reading(label, r.mi, r.stderr, (float(r.ci[0]), float(r.ci[1])), time.perf_counter() - t0,
                       time.process_time() - c0, "; ".join([detail, *notes]))

    return measure


# ------------------------------------------------------------------------------------ the checks


def independence_check(x: np.ndarray, y: np.ndarray, measure: Estimator, tol: Tolerance, seed: int = 0,
                       label: str = "I(X; shuffled Y)") -> Check:
    """``|Î(X; π(Y))| <= z·se + atol`` for a random permutation π of the rows of ``y``."""
    shuffled = y[np.random.default_rng(seed).permutation(len(y))]
    r = measure(x, shuffled, label)
    return Check("independence", f"independence: {label} = 0", "|Î| <= z·se + atol", abs(r.value), 0.0,
                 tol(r.stderr), (r,))


def processing_checks(x_images: np.ndarray, y: np.ndarray, names: Sequence[str], measure: Estimator, tol: Tolerance,
                      base: Reading | None = None, sides: tuple[str, str] = ("X", "Y")) -> list[Check]:
    """For each processing ``g`` (:data:`PROCESSINGS`) of the images ``x_images`` ``(n, h, w)``:
    ``Î(g(X); Y) - Î(X; Y) <= z·sqrt(se_g² + se_X²) + atol``. ``base``: Î(X; Y) if already measured."""
    flat = x_images.reshape(len(x_images), -1)
    base = base or measure(flat, y, f"I({sides[0]}; {sides[1]})")
    checks = []
    for name in names:
        g = process(x_images, name)
        r = measure(g.reshape(len(g), -1), y, f"I({name}({sides[0]}); {sides[1]})")
        checks.append(Check("processing", f"data processing: {r.label} <= {base.label}",
                            "Î(g(X);Y) − Î(X;Y) <= z·√(se_g² + se_X²) + atol", r.value, base.value,
                            tol(r.stderr, base.stderr), (base, r)))
    return checks


def process(images: np.ndarray, name: str) -> np.ndarray:
    """One of :data:`PROCESSINGS` applied to ``images`` ``(n, h, w)``: a deterministic function of each image."""
    check.check_known([name], list(PROCESSINGS), "unknown processing")
    if name == "blur":
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(images.astype(np.float64), sigma=(0, 1.0, 1.0), mode="nearest")
    if name == "crop":
        k = max(1, images.shape[2] // 7)
        return images[:, :, k:images.shape[2] - k]
    n, h, w = images.shape  # downsample
    trimmed = images[:, : h - h % 2, : w - w % 2]
    return trimmed.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def additivity_check(pair1: tuple[np.ndarray, np.ndarray], pair2: tuple[np.ndarray, np.ndarray], measure: Estimator,
                     tol: Tolerance, names: tuple[str, str] = ("I(X1; Y1)", "I(X2; Y2)")) -> Check:
    """``|Î([X1,X2]; [Y1,Y2]) − (Î(X1;Y1) + Î(X2;Y2))| <= z·sqrt(se_J² + se_1² + se_2²) + atol + rtol·sum``
    for two independent pairs of equally many rows; ``ratio`` = joint / sum."""
    (x1, y1), (x2, y2) = pair1, pair2
    if len(x1) != len(x2):
        raise ValueError(f"the two pairs need as many rows each, got {len(x1)} and {len(x2)}")
    r1, r2 = measure(x1, y1, names[0]), measure(x2, y2, names[1])
    joint = measure(np.hstack([x1, x2]), np.hstack([y1, y2]), "I([X1, X2]; [Y1, Y2])")
    total = r1.value + r2.value
    both = Reading("sum of the two", total, math.hypot(r1.stderr, r2.stderr), detail="Î(X1;Y1) + Î(X2;Y2)")
    return Check("additivity", "additivity: I([X1, X2]; [Y1, Y2]) = I(X1; Y1) + I(X2; Y2)",
                 "|Î_joint − (Î1 + Î2)| <= z·√(se_J² + se_1² + se_2²) + atol + rtol·(Î1 + Î2)",
                 abs(joint.value - total), 0.0, tol(joint.stderr, r1.stderr, r2.stderr, expected=total),
                 (r1, r2, both, joint), ratio=joint.value / total if total else math.nan)


def classifier_checks(features: np.ndarray, labels: np.ndarray, names: Sequence[str], measure: Estimator,
                      tol: Tolerance, holdout: float = 0.3, seed: int = 0) -> list[Check]:
    """``Î(X; label) >= H − CE − (z·sqrt(se_Î² + se_CE²) + atol)`` for each classifier, and
    ``Î(X; label) <= H + z·se_Î + atol``."""
    est = measure(features, np.asarray(labels, dtype=np.float64), "I(image; label)")
    entropy = Reading("H(label)", label_entropy(labels), 0.0, detail="plug-in entropy of the labels")
    checks = []
    for name in names:
        t0, c0 = time.perf_counter(), time.process_time()
        cert = certified_bound(features, labels, name, holdout, seed)
        r = Reading(f"certified by {name}", cert.value, cert.stderr, None, time.perf_counter() - t0,
                    time.process_time() - c0, f"{CLASSIFIERS[name]}: held-out accuracy {cert.accuracy:.3f}, "
                    f"CE {cert.cross_entropy:.3f} nats on {cert.n_test} rows (fitted on {cert.n_train})")
        checks.append(Check("classifier", f"certified: I(image; label) >= H − CE({name})",
                            "H − CE − Î <= z·√(se_Î² + se_CE²) + atol", r.value, est.value,
                            tol(est.stderr, r.stderr), (est, r)))
    checks.append(Check("classifier", "upper: I(image; label) <= H(label)", "Î − H <= z·se_Î + atol", est.value,
                        entropy.value, tol(est.stderr), (est, entropy)))
    return checks


# ------------------------------------------------------------------------------------- the suite


def halves(images: np.ndarray, axis: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(first, second)`` halves of ``images`` ``(n, h, w)`` along ``axis`` 1 (top, bottom) or 2
    (left, right), each ``(n, h/2, w)`` or ``(n, h, w/2)`` (an odd middle row or column is left out);
    with ``width``, the first and last ``width`` rows (or columns) only, at most half each."""
    k = images.shape[axis] // 2
    if width is not None:
        if not 1 <= width <= k:
            raise ValueError(f"width must be between 1 and {k} (half of {images.shape[axis]}), got {width}")
        k = width
    first = images[:, :k] if axis == 1 else images[:, :, :k]
    second = images[:, -k:] if axis == 1 else images[:, :, -k:]
    return first, second


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def load_images(config: ConsistencyConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """``(images (n, h, w) float in [0, 1], labels (n,), where from)``: the first ``config.n``
    training images of ``config.dataset`` (channels averaged)."""
    from mi_estimators.training.data import DEFAULT_DIRS, as_float, load_dataset

    data = load_dataset(config.dataset, "train", data_dir=config.data_dir)
    if len(data) < config.n:
        raise ValueError(f"n={config.n} but the {config.dataset} training split has {len(data)} images; "
                         f"pass n <= {len(data)}")
    images = as_float(data.images[: config.n]).mean(dim=1).numpy().astype(np.float64)
    source = config.data_dir or DEFAULT_DIRS.get(config.dataset, f"scikit-learn's bundled {config.dataset}")
    return images, data.labels[: config.n].numpy(), str(source)


def _steps(config: ConsistencyConfig) -> int:
    """How many estimates the run makes (the progress bar's total)."""
    count = {"independence": 1, "processing": 1 + len(config.processings), "additivity": 3, "classifier": 1}
    return sum(count[c] for c in config.checks)


def _run_checks(config: ConsistencyConfig, images: np.ndarray, labels: np.ndarray, measure: Estimator) -> list[Check]:
    tol, n = config.tolerance, len(images)
    top, bottom = halves(images, 1)
    x, y = _flat(top), _flat(bottom)
    checks: list[Check] = []
    for name in config.checks:
        if name == "independence":
            checks.append(independence_check(x, y, measure, tol, config.seed, "I(top; shuffled bottom)"))
        elif name == "processing":
            base = measure(x, y, "I(top; bottom)")
            checks += processing_checks(top, y, config.processings, measure, tol, base=base, sides=("top", "bottom"))
        elif name == "additivity":
            a, b = slice(0, n // 2), slice(n // 2, 2 * (n // 2))
            widths = [config.strip or max(1, images.shape[axis] // 4) for axis in (1, 2)]
            pairs = [tuple(_flat(p) for p in halves(part, axis, k))
                     for part, axis, k in ((images[a], 1, widths[0]), (images[b], 2, widths[1]))]
            checks.append(additivity_check(*pairs, measure, tol, (
                f"I(top {widths[0]} rows; bottom {widths[0]} rows), first n/2 images",
                f"I(left {widths[1]} columns; right {widths[1]} columns), next n/2 images")))
        elif name == "classifier":
            checks += classifier_checks(_flat(images), labels, config.classifiers, measure, tol, config.holdout,
                                        config.seed)
    return checks


def run_consistency(config: ConsistencyConfig | None = None, data: tuple[np.ndarray, np.ndarray] | None = None, *,
                    command: str | None = None) -> ConsistencyReport:
    """Run ``config.checks`` on the first ``config.n`` training images of ``config.dataset`` (or on
    ``data = (images (n, h, w) in [0, 1], labels (n,))``), with ``config.threads`` torch and BLAS
    threads. ``command`` is recorded in the settings (and quoted by the report writer)."""
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    c = config or ConsistencyConfig()
    if data is None:
        images, labels, source = load_images(c)
    else:
        images, labels, source = np.asarray(data[0], dtype=np.float64), np.asarray(data[1]), "given arrays"
        if images.ndim != 3 or len(labels) != len(images):
            raise ValueError(f"data must be (images (n, h, w), labels (n,)), got {images.shape} and {labels.shape}")
    if len(images) < 8 or min(images.shape[1:]) < 4:
        raise ValueError(f"need at least 8 images of at least 4x4 pixels, got {images.shape}")
    show = sys.stderr.isatty() if c.progress is None else c.progress
    bar = tqdm(total=_steps(c), desc="consistency", disable=not show, dynamic_ncols=True)
    measure = estimator(c)

    def counted(x: np.ndarray, y: np.ndarray, label: str) -> Reading:
        bar.set_postfix_str(label[:40])
        r = measure(x, y, label)
        bar.update(1)
        return r

    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=c.threads):
        checks = _run_checks(c, images, labels, counted)
    bar.close()
    settings = dict(source=source, rows=len(images), image_shape=list(images.shape[1:]), command=command,
                    seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)
    return ConsistencyReport(c, tuple(checks), settings)
