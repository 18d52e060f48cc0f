"""The hidden tasks (mi_estimators.tasks.hidden): a base task padded with independent N(0, 1) columns and
rotated, checked against the closed form of the Gaussian it makes of a Gaussian base, against the base
task's own sample, and for the registered hidden spiral."""

import math

import numpy as np
import pytest
from scipy import linalg

import mi_estimators as mie
from mi_estimators.tasks import CATALOG, GaussianTask, HiddenTask, haar_rotation, spiral_task

HIDDEN_SPIRAL = "hidden-spiral-gauss-2pair-100x100"


def test_hidden_spiral_is_registered_with_the_spirals_mi():
    assert HIDDEN_SPIRAL in mie.available("tasks") and HIDDEN_SPIRAL in CATALOG
    task = mie.get(HIDDEN_SPIRAL, kind="tasks")
    spiral = mie.get("spiral-gauss-2pair-5x5", kind="tasks")
    assert task.id == HIDDEN_SPIRAL and (task.x_dim, task.y_dim) == (100, 100)
    assert task.mi == spiral.mi == pytest.approx(-math.log(1 - 0.8 ** 2), abs=1e-12)   # two pairs of corr 0.8
    assert task.mi_stderr == 0.0


def test_rotations_are_orthogonal_and_fixed():
    a, b = mie.get(HIDDEN_SPIRAL, kind="tasks"), mie.get(HIDDEN_SPIRAL, kind="tasks")
    for q in (a.qx, a.qy):
        np.testing.assert_allclose(q @ q.T, np.eye(100), atol=1e-12)
    np.testing.assert_array_equal(a.qx, b.qx)                       # a task is one fixed distribution
    np.testing.assert_array_equal(a.qy, b.qy)
    assert not np.allclose(a.qx, a.qy)                              # two draws, not one rotation twice
    x1, y1 = a.sample(50, seed=3)
    x2, y2 = b.sample(50, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(x1, a.sample(50, seed=4)[0])


def test_haar_rotation_is_uniform_on_average():
    # the mean of a Haar-random orthogonal matrix is 0 and E[q_ij^2] = 1/d; the plain QR without the sign
    # fix is not Haar (numpy's Q has a diagonal of mean about -0.5 or 0.5 in 3-d), which this catches
    rng = np.random.default_rng(0)
    qs = np.stack([haar_rotation(3, rng) for _ in range(4000)])
    np.testing.assert_allclose(qs.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose((qs ** 2).mean(0), 1 / 3, atol=0.03)


def test_the_signal_directions_give_back_the_base_sample():
    task = mie.get(HIDDEN_SPIRAL, kind="tasks")
    x, y = task.sample(2000, seed=5)
    xb, yb = task.base.sample(2000, seed=5)                           # the base draws come first from the seed
    np.testing.assert_allclose(x @ task.x_directions.T, xb, atol=1e-10)
    np.testing.assert_allclose(y @ task.y_directions.T, yb, atol=1e-10)
    noise_x, noise_y = x @ task.qx[5:].T, y @ task.qy[5:].T
    cross = np.hstack([noise_x, xb]).T @ np.hstack([noise_y, yb]) / len(x)
    assert np.abs(cross[:95]).max() < 0.12 and np.abs(cross[:, :95]).max() < 0.12   # noise: independent of all


def test_each_side_of_the_hidden_spiral_is_standard_normal():
    # the spiral keeps the 2-pair Gaussian's N(0, I) marginal and the padding is N(0, I): so is the rotation
    x, y = mie.get(HIDDEN_SPIRAL, kind="tasks").sample(20000, seed=1)
    for side in (x, y):
        np.testing.assert_allclose(np.cov(side.T), np.eye(100), atol=0.05)
        np.testing.assert_allclose(side.mean(0), 0.0, atol=0.04)


def test_a_hidden_gaussian_is_the_gaussian_of_the_rotated_covariance():
    base = GaussianTask.structured(5, 4, corr=0.8, n_interacting=2)
    task = HiddenTask(base, 20, 30, rotation_seed=7)
    padded = np.eye(50)                                                 # [X, N], [Y, M]: unit variances
    padded[:5, 20:24] = base.cov[:5, 5:]
    padded[20:24, :5] = base.cov[5:, :5]
    q = linalg.block_diag(task.qx, task.qy)
    cov = q.T @ padded @ q                                              # Cov([X, N] Q_x, [Y, M] Q_y)
    closed = GaussianTask(cov, 20)
    assert closed.mi == pytest.approx(base.mi, abs=1e-10)            # closed form, independently of HiddenTask.mi
    assert task.mi == base.mi
    x, y = task.sample(40000, seed=2)
    np.testing.assert_allclose(np.cov(np.hstack([x, y]).T), cov, atol=0.04)
    np.testing.assert_allclose(task.log_density_ratio(x[:500], y[:500]), closed.log_density_ratio(x[:500], y[:500]),
                               atol=1e-8)


def test_density_ratio_averages_to_the_mi_and_ignores_the_noise_columns():
    task = mie.get(HIDDEN_SPIRAL, kind="tasks")
    x, y = task.sample(20000, seed=6)
    ratio = task.log_density_ratio(x, y)
    assert abs(ratio.mean() - task.mi) < 4 * ratio.std() / math.sqrt(len(ratio))
    moved = x + np.random.default_rng(0).standard_normal((20000, 95)) @ task.qx[5:]   # change only the noise
    np.testing.assert_allclose(task.log_density_ratio(moved, y), ratio, atol=1e-8)


@pytest.mark.parametrize("call, match", [
    (lambda: HiddenTask(spiral_task(GaussianTask.structured(5, 5, corr=0.8, n_interacting=2)), 4, 10), "x_dim"),
    (lambda: HiddenTask(GaussianTask.from_mi(0.5, 2), 3, 1), "y_dim"),
    (lambda: HiddenTask(GaussianTask.from_mi(0.5, 1), 3, 3, rotation_seed=-1), "rotation_seed"),
    (lambda: mie.get(HIDDEN_SPIRAL, kind="tasks").log_density_ratio(np.zeros((2, 5)), np.zeros((2, 100))), "shape"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
