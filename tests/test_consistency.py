"""The self-consistency suite (mi_estimators.validation.consistency): each check passes where its
property holds (known MI), fails where it is violated, and the certified bound agrees with a naive
reference. Small n, few steps, one thread."""

import json
import math

import numpy as np
import pytest

import mi_estimators as mie
from mi_estimators.validation.certified import UNIFORM_MIX, certificate, certified_bound, label_entropy
from mi_estimators.validation.consistency import (Check, ConsistencyConfig, Reading, Tolerance, additivity_check,
                                                  classifier_checks, estimator, halves, independence_check, process,
                                                  processing_checks, run_consistency)
from mi_estimators.validation.consistency_report import verdict_rows, write_consistency_report

FAST = ConsistencyConfig(steps=100, progress=False)
TOL = FAST.tolerance


def fixed(values: dict[str, tuple[float, float]]):
    """An estimator that reads given (value, stderr) by label: the verdict arithmetic without fitting."""
    return lambda x, y, label: Reading(label, *values[label])


def gaussian_field(n: int, seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 4, 4), y (n, 1))``: y = mean pixel + noise, so any processing keeping the mean keeps it all:
    ``I(X; Y) = ½ log(1 + (1/16) / noise²)``; ``I(X[:, :, 1:3]; Y) = ½ log((1/16 + noise²) / (1/32 + noise²))``."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 4, 4))
    return images, images.mean(axis=(1, 2))[:, None] + noise * rng.normal(size=(n, 1))


def test_tolerance_and_margin_arithmetic():
    tol = Tolerance(z=2.0, atol=0.02, rtol=0.1)
    assert tol(0.3, 0.4, expected=-2.0) == pytest.approx(2 * 0.5 + 0.02 + 0.2)
    assert tol() == pytest.approx(0.02)
    c = Check("f", "n", "t", lhs=1.0, rhs=0.5, tolerance=0.5, readings=())
    assert c.margin == 0.0 and c.passed
    assert not Check("f", "n", "t", 1.0, 0.5, 0.49, ()).passed
    assert not Check("f", "n", "t", math.nan, 0.5, 0.5, ()).passed  # a failed estimate does not pass


def test_independence_reads_zero_on_a_dependent_pair_and_fails_on_a_nonzero_reading():
    x, y = mie.get("gauss-2x2-mi1", kind="tasks").sample(1500, seed=0)
    c = independence_check(x, y, estimator(FAST), TOL, seed=0)
    assert c.passed, c
    assert c.readings[0].value <= c.tolerance and c.lhs == abs(c.readings[0].value)
    # the same check with an estimator that reads 0.1 ± 0.02: 0.1 > 2·0.02 + 0.02
    bad = independence_check(x, y, fixed({"I(X; shuffled Y)": (0.1, 0.02)}), TOL)
    assert not bad.passed and bad.margin == pytest.approx(0.06 - 0.1)


def test_processing_holds_for_a_function_of_x_and_fails_against_a_noisier_original():
    images, y = gaussian_field(2000, seed=1)
    measure = estimator(FAST)
    checks = processing_checks(images, y, ["downsample", "crop"], measure, TOL)
    assert [c.passed for c in checks] == [True, True], checks
    base = checks[0].readings[0]
    truth, cropped = 0.5 * math.log(1 + 6.25), 0.5 * math.log(0.0725 / 0.04125)
    assert abs(base.value - truth) < 0.1
    # downsampling keeps the mean, a sufficient statistic of X for Y: equality, within the errors
    assert abs(checks[0].lhs - truth) < 0.1
    # cropping loses the half of the pixels that y depends on
    assert abs(checks[1].lhs - cropped) < 0.1
    # an "original" that is noisier than the images: I(g(X); Y) > I(noisy X; Y), reported as failed
    noisy = images + 3.0 * np.random.default_rng(2).normal(size=images.shape)
    worse = measure(noisy.reshape(len(noisy), -1), y, "I(noisy X; Y)")
    failed = processing_checks(images, y, ["downsample"], measure, TOL, base=worse)
    assert not failed[0].passed and failed[0].lhs > worse.value


def test_process_is_a_function_of_each_image():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 14, 28))
    down = process(images, "downsample")
    assert down.shape == (3, 7, 14)
    np.testing.assert_allclose(down[1, 2, 3], images[1, 4:6, 6:8].mean())
    assert process(images, "crop").shape == (3, 14, 28 - 2 * 4)
    blurred = process(images, "blur")
    assert blurred.shape == images.shape and blurred.std() < images.std()
    np.testing.assert_allclose(process(np.full((2, 5, 5), 0.3), "blur"), 0.3)  # a constant image stays itself
    np.testing.assert_allclose(process(images[1:2], "blur")[0], blurred[1])    # image by image
    with pytest.raises(ValueError, match="did you mean 'blur'"):
        process(images, "blurr")


def test_halves():
    images = np.arange(2 * 5 * 4, dtype=float).reshape(2, 5, 4)
    top, bottom = halves(images, 1)
    assert top.shape == bottom.shape == (2, 2, 4)
    np.testing.assert_array_equal(top[0], images[0, :2])
    np.testing.assert_array_equal(bottom[0], images[0, 3:])
    left, right = halves(images, 2)
    np.testing.assert_array_equal(left[1], images[1, :, :2])
    np.testing.assert_array_equal(right[1], images[1, :, 2:])
    first, last = halves(images, 2, width=1)  # strips: the outer column on each side
    np.testing.assert_array_equal(first[0], images[0, :, :1])
    np.testing.assert_array_equal(last[0], images[0, :, 3:])
    with pytest.raises(ValueError, match="width must be between 1 and 2"):
        halves(images, 1, width=3)


def test_additivity_of_two_independent_gaussian_pairs_and_not_of_a_pair_beside_itself():
    a, b = mie.get("gauss-1x1-mi0.5", kind="tasks"), mie.get("gauss-2x2-mi1", kind="tasks")
    pair1, pair2 = a.sample(2000, seed=3), b.sample(2000, seed=4)
    c = additivity_check(pair1, pair2, estimator(FAST), TOL)
    assert c.passed, c
    joint = c.readings[-1].value
    assert abs(joint - (a.mi + b.mi)) < 0.15 and abs(c.ratio - 1) < 0.1
    assert c.readings[2].value == pytest.approx(c.readings[0].value + c.readings[1].value)
    # the same pair twice is not two independent pairs: the joint reads I, not 2I (ratio 1/2)
    twice = additivity_check(pair2, pair2, estimator(FAST), TOL)
    assert not twice.passed and abs(twice.ratio - 0.5) < 0.1


def naive_certificate(proba, classes, test_labels, all_labels):
    """The certified value by loops: H from counts, CE from the mixed probabilities one row at a time."""
    known = sorted(set(all_labels.tolist()))
    counts = {k: list(all_labels).count(k) for k in known}
    h = -sum(c / len(all_labels) * math.log(c / len(all_labels)) for c in counts.values())
    nll = []
    for i, label in enumerate(test_labels):
        col = list(classes).index(label) if label in list(classes) else None
        p = proba[i, col] if col is not None else 0.0
        nll.append(-math.log((1 - UNIFORM_MIX) * p + UNIFORM_MIX / len(known)))
    mean = sum(nll) / len(nll)
    sd = math.sqrt(sum((v - mean) ** 2 for v in nll) / (len(nll) - 1))
    return h, mean, sd / math.sqrt(len(nll))


def test_certificate_matches_a_naive_reference_including_a_class_the_classifier_never_saw():
    rng = np.random.default_rng(5)
    all_labels = rng.integers(0, 4, size=60)
    test = all_labels[:25]
    classes = np.array([0, 1, 3])  # the classifier never saw class 2
    proba = rng.dirichlet(np.ones(3), size=25)
    c = certificate(proba, classes, test, all_labels)
    h, ce, se = naive_certificate(proba, classes, test, all_labels)
    assert c.entropy == pytest.approx(h) and c.cross_entropy == pytest.approx(ce) and c.stderr == pytest.approx(se)
    assert c.value == pytest.approx(h - ce) and c.n_test == 25
    assert label_entropy(np.array([7, 7, 9, 9])) == pytest.approx(math.log(2))


def test_certified_bound_reaches_the_entropy_for_separable_labels_and_nothing_for_independent_ones():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, size=900)
    features = np.eye(3)[labels] * 5 + rng.normal(size=(900, 3)) * 0.1
    sure = certified_bound(features, labels, "logistic", holdout=0.3, seed=0)
    assert sure.accuracy == 1.0 and sure.n_test == 270 and sure.n_train == 630
    assert sure.entropy - 0.1 < sure.value <= sure.entropy  # I = H(label) here, and the bound is below it
    blind = certified_bound(rng.normal(size=(900, 3)), labels, "logistic", seed=0)
    assert blind.value < 2 * blind.stderr + 0.01  # I = 0: nothing certified beyond the noise


def test_classifier_checks_fail_below_the_certified_value_and_above_the_entropy():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=400)
    features = labels[:, None] * 4.0 + rng.normal(size=(400, 2))
    h = label_entropy(labels)
    good = classifier_checks(features, labels, ["logistic"], fixed({"I(image; label)": (h - 0.02, 0.01)}), TOL)
    assert [c.passed for c in good] == [True, True]
    low = classifier_checks(features, labels, ["logistic"], fixed({"I(image; label)": (0.1, 0.01)}), TOL)
    assert [c.passed for c in low] == [False, True] and low[0].lhs > 0.5
    high = classifier_checks(features, labels, ["logistic"], fixed({"I(image; label)": (h + 0.5, 0.01)}), TOL)
    assert [c.passed for c in high] == [True, False]


def test_config_rejects_what_would_fail_minutes_later():
    with pytest.raises(ValueError, match="did you mean 'additivity'"):
        ConsistencyConfig(checks=("additivty",))
    with pytest.raises(ValueError, match="did you mean 'ensemble'"):
        ConsistencyConfig(options={"ensembl": 3})
    with pytest.raises(ValueError, match="fields of ConsistencyConfig"):
        ConsistencyConfig(options={"steps": 3})
    with pytest.raises(ValueError, match="holdout"):
        ConsistencyConfig(holdout=1.0)
    assert ConsistencyConfig(checks="independence").checks == ("independence",)


def test_run_on_digits_writes_a_report(tmp_path):
    config = ConsistencyConfig(dataset="digits", n=400, steps=30, processings=("downsample",),
                               classifiers=("logistic",), progress=False)
    report = run_consistency(config, command="test")
    assert [c.family for c in report.checks] == ["independence", "processing", "additivity", "classifier",
                                                 "classifier"]
    assert report.settings["rows"] == 400 and report.settings["image_shape"] == [8, 8]
    assert report.passed == all(c.passed for c in report.checks)
    path = write_consistency_report(report, tmp_path)
    text = path.read_text()
    assert "Verdict:" in text and "Command: `test`" in text and (tmp_path / "consistency.png").stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [c["passed"] for c in saved["checks"]] == [r["verdict"] == "pass" for r in verdict_rows(report)]
    with pytest.raises(ValueError, match="pass n <= "):
        run_consistency(ConsistencyConfig(dataset="digits", n=2000, progress=False))
