"""Floating-point noise in kernel matrices and the critical dataset size.

Lee et al. 2020 ("Finite Versus Infinite Neural Networks: an Empirical
Study", the section "floating point precision determines critical dataset
size for kernels") found that kernel regression on float32 kernels breaks
down past a critical training set size, earlier for kernels whose spectrum
decays fast (CNN-GAP on CIFAR-10 at about 10^4 images), and explained it with
a random-noise model:

* the eigenvalues of an ``m x m`` Gram matrix ``K`` follow the kernel's
  operator spectrum, ``lambda_i(K) ~ m C i^-alpha``, so its smallest one is
  about ``C m^(1 - alpha)`` (here ``K`` is scaled to a mean diagonal of 1, and
  ``(alpha, C)`` are fitted to ``lambda_i(K) / m`` by :func:`fit_power_law`);
* rounding every entry adds a symmetric noise matrix of entry scale
  ``sigma`` (about ``2^-(b+1) / sqrt(3)`` of the entries' size for ``b``
  mantissa bits), whose eigenvalues spread over about ``sqrt(2 m) sigma``;
* the smallest eigenvalues drown in the noise once ``C m^(1 - alpha) <
  sqrt(2 m) sigma``, i.e. past

      m* = (C / (sqrt(2) sigma)) ** (2 / (2 alpha - 1))      (alpha > 1/2)

  (:func:`critical_size`; no critical size for ``alpha <= 1/2``).

Past ``m*`` the noise decides the small eigen-directions of an unregularised
solve ``K^-1 y`` and the test accuracy collapses; a ``diag_reg`` well above
``sqrt(2 m) sigma`` (relative to the mean diagonal), or float64, removes it.

:func:`round_mantissa` emulates a format with fewer mantissa bits (float32
has 23, float16 10, bfloat16 7) by rounding float64 entries, so the model can
be tested at CPU sizes by raising ``sigma`` instead of ``m``. Only the
mantissa is emulated: no format's exponent range (float16 overflows above
65504). Plain numpy, float64.
"""

from __future__ import annotations

import math

import numpy as np

# Explicit mantissa (fraction) bits of the IEEE / brain floating-point formats.
MANTISSA_BITS = {'float64': 52, 'float32': 23, 'float16': 10, 'bfloat16': 7}


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Rounds float64 values to ``bits`` explicit mantissa bits (ties to even).

    ``round_mantissa(x, 23)`` equals ``x.astype(np.float32)`` for values in
    float32's normal range; ``bits >= 52`` returns ``x`` unchanged.

    Args:
        x: values (any shape), converted to float64.
        bits: explicit mantissa bits kept, ``1 <= bits``.

    Returns:
        A float64 array of ``x``'s shape.
    """
    if int(bits) != bits or bits < 1:
        raise ValueError(f'mantissa bits must be a positive integer, got {bits!r}')
    x = np.asarray(x, np.float64)
    if bits >= MANTISSA_BITS['float64']:
        return x.copy()
    mantissa, exponent = np.frexp(x)         # x = mantissa 2^exponent, |m| in [0.5, 1)
    scale = 2.0 ** (int(bits) + 1)            # the leading 1 is implicit
    return np.ldexp(np.round(mantissa * scale) / scale, exponent)


def mean_diagonal(k_train: np.ndarray) -> float:
    """The scale every quantity here is relative to: ``mean(diag K)``."""
    scale = float(np.mean(np.diag(np.asarray(k_train, np.float64))))
    if not scale > 0:
        raise ValueError(f'the kernel has mean diagonal {scale}; a kernel '
                         'matrix needs positive diagonal entries')
    return scale


def relative_noise(k_noisy: np.ndarray, k_exact: np.ndarray) -> float:
    """``sigma``: the RMS of ``k_noisy - k_exact`` over ``mean(diag k_exact)``.

    Both are the same square (train x train) kernel; zero when identical.
    """
    k_exact = np.asarray(k_exact, np.float64)
    diff = np.asarray(k_noisy, np.float64) - k_exact
    return float(np.sqrt(np.mean(diff * diff)) / mean_diagonal(k_exact))


def fit_power_law(eigenvalues: np.ndarray, fit: tuple[float, float] = (0.05, 0.5)
                  ) -> tuple[float, float]:
    """Fits ``lambda_i / m ~ C i^-alpha`` to a Gram matrix's spectrum.

    Args:
        eigenvalues: the ``m`` eigenvalues of a train kernel scaled to a mean
            diagonal of 1, in any order.
        fit: the part of the spectrum fitted, as fractions of ``m``: indices
            ``fit[0] m <= i <= fit[1] m`` (1-based), the tail past the few
            top eigenvalues and before the smallest ones (which fall below
            the power law at any finite ``m``).

    Returns:
        ``(alpha, C)``: least squares of ``log(lambda_i / m)`` on ``log i``.

    Raises:
        ValueError: fewer than 3 positive eigenvalues in the fitted range.
    """
    lo, hi = fit
    if not 0 < lo < hi <= 1:
        raise ValueError(f'the power-law fit range {list(fit)} needs 0 < lo < hi <= 1')
    values = np.sort(np.asarray(eigenvalues, np.float64))[::-1]
    m = len(values)
    index = np.arange(1, m + 1)
    keep = (index >= lo * m) & (index <= hi * m) & (values > 0)
    if keep.sum() < 3:
        raise ValueError(
            f'{int(keep.sum())} positive eigenvalues in the fit range {list(fit)} '
            f'of {m}; use more training points or a wider experiment.fit')
    slope, intercept = np.polyfit(np.log(index[keep]), np.log(values[keep] / m), 1)
    return float(-slope), float(math.exp(intercept))


def critical_size(alpha: float, c: float, sigma: float) -> float:
    """``m* = (C / (sqrt(2) sigma))^(2 / (2 alpha - 1))`` (Lee et al. 2020).

    Returns ``inf`` where the model has no critical size: ``alpha <= 1/2``
    (the smallest eigenvalue ``C m^(1 - alpha)`` keeps pace with the noise's
    ``sqrt(2 m) sigma``) or ``sigma = 0``.
    """
    if sigma <= 0 or alpha <= 0.5:
        return math.inf
    return float((c / (math.sqrt(2.0) * sigma)) ** (2.0 / (2.0 * alpha - 1.0)))


def noise_floor(sigma: float, m: int) -> float:
    """``sqrt(2 / m) sigma``: the noise's eigenvalue scale on the ``lambda / m``
    axis of :func:`fit_power_law`; eigenvalues below it are noise."""
    return math.sqrt(2.0 / m) * sigma


class EigenSolver:
    """Kernel regression through ``K``'s eigendecomposition, indefinite or not.

    ``(K + diag_reg mean(diag K) I)^-1 y`` as ``V (V^T y) / (w + diag_reg s)``:
    the unregularised solve of a kernel whose small eigenvalues are noise
    (some negative) is what the float32 kernels of Lee et al. 2020 get, and a
    Cholesky factorisation would refuse it. A zero denominator gives ``inf``.

    Args:
        k_train: the ``m x m`` train kernel (symmetric).
        y_train: targets ``(m, k)``.
    """

    def __init__(self, k_train: np.ndarray, y_train: np.ndarray):
        k_train = np.asarray(k_train, np.float64)
        self.scale = mean_diagonal(k_train)
        self.eigenvalues, self.eigenvectors = np.linalg.eigh(
            (k_train + k_train.T) / 2)
        self.projected = self.eigenvectors.T @ np.asarray(y_train, np.float64)

    def coefficients(self, diag_reg: float) -> np.ndarray:
        """``(K + diag_reg mean(diag K) I)^-1 y``."""
        denominator = self.eigenvalues + diag_reg * self.scale
        with np.errstate(divide='ignore', invalid='ignore'):
            return self.eigenvectors @ (self.projected / denominator[:, None])

    def predict(self, k_test_train: np.ndarray, diag_reg: float) -> np.ndarray:
        """Test predictions ``K_test,train (K + diag_reg s I)^-1 y``."""
        return np.asarray(k_test_train, np.float64) @ self.coefficients(diag_reg)

    def min_eigenvalue(self) -> float:
        """The smallest eigenvalue over ``mean(diag K)``."""
        return float(self.eigenvalues[0] / self.scale)

    def negative_count(self) -> int:
        """How many eigenvalues are negative (none for an exact kernel)."""
        return int(np.sum(self.eigenvalues < 0))
