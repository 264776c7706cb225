"""Infinite-width predictions from precomputed kernels, in float64.

Closed forms of Lee et al. 2019 ("Wide Neural Networks of Any Depth Evolve as
Linear Models Under Gradient Descent", eqs. 14-16) and Lee et al. 2020
("Finite Versus Infinite Neural Networks", Sec. 3): for a kernel ``K`` (NNGP
or NTK) on the training set, ``K*`` between test and train points, the
regularised kernel is ``K + eps * mean(diag K) * I`` (the diagonal regulariser
is relative to the kernel's mean diagonal, as in Lee et al. 2020), and

* at ``t = inf`` the mean prediction is ``K* (K + eps tr(K)/n I)^{-1} y``;
* at finite ``t`` (gradient flow on the MSE loss ``0.5 ||f - y||^2 / (n k)``
  for ``k`` outputs, the convention of ``nt.predict.gradient_descent_mse``) it
  is ``K* K^{-1} (I - exp(-K t / (n k))) y``.

Solves use a Cholesky factorisation (float64); a kernel that is not positive
definite or a solve that yields NaN stops with :class:`KernelSolveError`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


class KernelSolveError(ValueError):
    """A kernel solve failed; the message suggests float64 or more diag_reg."""


def regularised(k_train: np.ndarray, diag_reg: float) -> np.ndarray:
    """``K + diag_reg * mean(diag K) * I`` (Lee et al. 2020's scaling)."""
    k = np.array(k_train, dtype=np.float64, copy=True)
    scale = float(np.mean(np.diag(k)))
    k[np.diag_indices_from(k)] += diag_reg * scale
    return k


def cholesky(k_train: np.ndarray, diag_reg: float, name: str = 'kernel'):
    """Cholesky factor of the regularised kernel, or a clear error.

    Raises:
        KernelSolveError: the regularised kernel is not positive definite.
    """
    k = regularised(k_train, diag_reg)
    if not np.all(np.isfinite(k)):
        raise KernelSolveError(
            f'the {name} kernel has NaN/inf entries; '
            + ('compute it in float64 (precision=float64) or check'
               if _single(k_train) else 'check')
            + ' the model (e.g. a too large W_std)')
    try:
        # ``k`` is a symmetric copy: its transpose is the same matrix in the
        # Fortran order LAPACK factors in place (no second n x n copy).
        return scipy.linalg.cho_factor(k.T, lower=True, overwrite_a=True,
                                       check_finite=False)
    except np.linalg.LinAlgError:
        raise KernelSolveError(
            f'the {name} train-train kernel + diag_reg={diag_reg:g} * mean '
            f'diagonal is not positive definite; {_fix(k_train)} (e.g. 1e-4 '
            'or 1e-2)') from None


def predict_inf(k_train: np.ndarray, k_test_train: np.ndarray, y_train: np.ndarray,
                diag_reg: float, name: str = 'kernel') -> np.ndarray:
    """Mean prediction at ``t = inf``: ``K* (K + reg)^{-1} y``."""
    factor = cholesky(k_train, diag_reg, name)
    alpha = scipy.linalg.cho_solve(factor, np.asarray(y_train, np.float64))
    out = np.asarray(k_test_train, np.float64) @ alpha
    _check_finite(out, name, diag_reg, k_train)
    return out


class GradientFlow:
    """Gradient flow from ``f_0 = 0`` on one regularised kernel, decomposed
    once: predictions at any number of times and input sets for one
    eigendecomposition (a sweep over ``t`` and the train / test predictions
    share it).

    ``f_t(x*) = K* K^{-1} (I - exp(-K t / (n k))) y`` with ``K`` regularised
    and ``n k = y_train.size``; this is ``nt.predict.gradient_descent_mse``
    with learning rate 1 and zero initial outputs (the mean over
    initialisations in the infinite-width limit).

    Raises:
        KernelSolveError: the regularised kernel is not positive definite.
    """

    def __init__(self, k_train: np.ndarray, y_train: np.ndarray, diag_reg: float,
                 name: str = 'kernel'):
        self.name, self.diag_reg, self._k_train = name, diag_reg, k_train
        k = regularised(k_train, diag_reg)
        self.n = np.asarray(y_train).size
        # In place on the copy ``k`` (symmetric: its transpose is the
        # Fortran-order array LAPACK wants): the eigenvectors overwrite it,
        # 3 n^2 at the peak (numpy's eigh: 5 n^2).
        self.evals, self.evecs = scipy.linalg.eigh(
            k.T, overwrite_a=True, driver='evd', check_finite=False)
        if self.evals.min() <= 0:
            raise KernelSolveError(
                f'the {name} train-train kernel is not positive definite '
                f'(smallest eigenvalue {self.evals.min():.3g}); {_fix(k_train)}')
        self.projected = self.evecs.T @ np.asarray(y_train, np.float64)

    def predict(self, k_test_train: np.ndarray, t: float) -> np.ndarray:
        """The mean prediction at ``k_test_train``'s inputs after time ``t``."""
        # K^{-1} (I - exp(-K t / (n k))) = U diag((1 - exp(-l t / n)) / l) U^T.
        weights = -np.expm1(-self.evals * t / self.n) / self.evals
        alpha = self.evecs @ (weights[:, None] * self.projected)
        out = np.asarray(k_test_train, np.float64) @ alpha
        _check_finite(out, self.name, self.diag_reg, self._k_train)
        return out


def predict_t(k_train: np.ndarray, k_test_train: np.ndarray, y_train: np.ndarray,
              diag_reg: float, t: float, name: str = 'kernel') -> np.ndarray:
    """Mean prediction after gradient flow for time ``t`` from ``f_0 = 0``
    (:class:`GradientFlow`; ``t`` None or inf: :func:`predict_inf`)."""
    if t is None or np.isinf(t):
        return predict_inf(k_train, k_test_train, y_train, diag_reg, name)
    return GradientFlow(k_train, y_train, diag_reg, name).predict(k_test_train, t)


def nngp_variance(k_train: np.ndarray, k_test_train: np.ndarray,
                  k_test_diag: np.ndarray, diag_reg: float) -> np.ndarray:
    """Posterior variance of the NNGP at each test point (Lee et al. 2018)."""
    factor = cholesky(k_train, diag_reg, 'nngp')
    v = scipy.linalg.solve_triangular(factor[0], np.asarray(k_test_train).T,
                                      lower=True)
    return np.asarray(k_test_diag, np.float64) - np.sum(v * v, axis=0)


def ntk_variance(ntk_train: np.ndarray, ntk_test_train: np.ndarray,
                 nngp_train: np.ndarray, nngp_test_train: np.ndarray,
                 nngp_test_diag: np.ndarray, diag_reg: float) -> np.ndarray:
    """Variance over initialisations of infinitely wide nets trained to t = inf.

    Lee et al. 2019, eq. 16: ``K** + T* T^{-1} K T^{-1} T*^T
    - (T* T^{-1} K*^T + h.c.)`` on the diagonal, with ``T`` the NTK and ``K``
    the NNGP kernel.
    """
    factor = cholesky(ntk_train, diag_reg, 'ntk')
    a = scipy.linalg.cho_solve(factor, np.asarray(ntk_test_train, np.float64).T)
    nngp_train = np.asarray(nngp_train, np.float64)
    term2 = np.sum(a * (nngp_train @ a), axis=0)
    term3 = np.sum(np.asarray(nngp_test_train, np.float64).T * a, axis=0)
    return np.asarray(nngp_test_diag, np.float64) + term2 - 2 * term3


def _single(k_train: np.ndarray) -> bool:
    """Whether the kernel was computed in float32 or less (before the solve's
    float64 copy)."""
    return np.asarray(k_train).dtype.itemsize < 8


def _fix(k_train: np.ndarray) -> str:
    """What helps a kernel that is not positive definite: float64 helps only
    a kernel computed in float32."""
    if _single(k_train):
        return 'use precision=float64 and/or a larger experiment.diag_reg'
    return ('use a larger experiment.diag_reg (the kernel is already float64: '
            'it is singular, e.g. duplicate inputs or more points than its rank)')


def _check_finite(out: np.ndarray, name: str, diag_reg: float,
                  k_train: np.ndarray) -> None:
    if not np.all(np.isfinite(out)):
        raise KernelSolveError(
            f'the {name} solve with diag_reg={diag_reg:g} gave NaN/inf; '
            f'{_fix(k_train)}')


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of test points classified right.

    The class of a point is its largest output's index; with one output
    (``dataset.targets=regression``: the label as a number) it is the nearest
    integer to that output (``argmax`` of one column would call every point
    class 0).
    """
    predictions = np.asarray(predictions)
    predictions = predictions.reshape(len(predictions), -1)
    if predictions.shape[1] == 1:
        guess = np.rint(predictions[:, 0])
    else:
        guess = np.argmax(predictions, axis=1)
    return float(np.mean(guess == np.asarray(labels)))


def mse(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean squared error over test points and outputs."""
    return float(np.mean((np.asarray(predictions) - np.asarray(targets)) ** 2))
