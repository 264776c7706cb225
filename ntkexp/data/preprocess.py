"""Preprocessing: seeded class-balanced subsets, standardisation, ZCA, targets.

Every statistic (means, deviations, the ZCA transform) is computed on
training inputs only and then applied to both splits: on the training subset
(``stats_from='subset'``, the default) or on the whole training split it was
drawn from (``'train_split'``).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

STANDARDIZE = (None, 'per_feature', 'per_channel', 'per_image')
TARGETS = ('onehot', 'onehot_centered', 'regression')
#: Where standardisation and ZCA statistics come from: the ``n_train`` images
#: used, or the whole training split (pool) they are drawn from.
STATS_FROM = ('subset', 'train_split')
#: ZCA fit on fewer images than features warns when test and training images'
#: mean norms differ by more than this factor after whitening.
ZCA_NORM_RATIO_WARNING = 1.1


def check_size(value, what: str, allow_none: bool = True) -> int | None:
    """Validates a size option (``n_train``, ``n_test``, ``d``...).

    Raises:
        ValueError: if it is not an integer >= 1, or None where not allowed
            (an empty training or test set would give empty means, not an
            error, further on).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f'{what} must be a positive integer'
                         + (' or null (all)' if allow_none else '') + f', got {value!r}.')
    if value < 1:
        raise ValueError(f'{what} must be >= 1'
                         + (' (or null for all)' if allow_none else '') + f', got {value}.')
    return int(value)


def balanced_subset(labels: np.ndarray, n: int | None, seed: int,
                    what: str = 'n_train') -> np.ndarray:
    """Indices of a seeded, class-balanced subset of ``n`` examples.

    Each class gets ``n // k`` examples; the remaining ``n % k`` go to classes
    picked by the seed. Within a class the examples are a seeded random
    permutation's prefix, so for one seed the subsets are nested: the first
    100 are contained in the first 1000. A class with too few examples gives its
    shortfall to the others.

    Args:
        labels: integer labels of the pool, shape (N,).
        n: subset size; None = the whole pool (in its original order).
        seed: the seed.
        what: option name for error messages.

    Returns:
        Sorted indices into ``labels`` (original order is kept).

    Raises:
        ValueError: if ``n`` exceeds the pool.
    """
    labels = np.asarray(labels)
    n = check_size(n, what)
    if n is None:
        return np.arange(len(labels))
    if n > len(labels):
        raise ValueError(f'{what}={n} is larger than the {len(labels)} examples '
                         f'available; use {what}<={len(labels)} or null for all.')
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    k = len(classes)
    quota = np.full(k, n // k)
    quota[rng.permutation(k)[: n % k]] += 1
    available = np.array([len(m) for m in members])
    take = np.minimum(quota, available)
    shortfall = n - take.sum()
    while shortfall > 0:  # move the shortfall to classes with room, evenly
        room = np.flatnonzero(take < available)
        extra = np.zeros(k, int)
        extra[room[: min(shortfall, len(room))]] = 1
        take += extra
        shortfall -= extra.sum()
    chosen = np.concatenate([m[:t] for m, t in zip(members, take)])
    return np.sort(chosen)


def standardize(x_train: np.ndarray, x_test: np.ndarray,
                mode: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance.

    Args:
        x_train: training inputs (N, ...), float.
        x_test: test inputs, same trailing shape.
        mode: None (unchanged); ``'per_feature'`` (every input coordinate,
            statistics over the training examples); ``'per_channel'`` (every
            channel, i.e. the last axis, statistics over examples and pixels);
            ``'per_image'`` (each example separately over all its features, the
            layer-norm style preprocessing used with ZCA by Lee et al. 2020).
            Constant features keep unit scale instead of dividing by zero.

    Returns:
        ``(x_train, x_test)`` standardised.
    """
    if mode is None:
        return x_train, x_test
    if mode == 'per_image':
        def norm(x):
            axes = tuple(range(1, x.ndim))
            mean = x.mean(axis=axes, keepdims=True)
            std = x.std(axis=axes, keepdims=True)
            return (x - mean) / np.where(std > 0, std, 1.0)
        return norm(x_train), norm(x_test)
    if mode == 'per_feature':
        axes = (0,)
    elif mode == 'per_channel':
        axes = tuple(range(x_train.ndim - 1))
    else:
        raise ValueError(f'standardize must be one of {STANDARDIZE}, got {mode!r}.')
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def fit_zca(x_train: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Regularised ZCA whitening transform, fit on the training inputs.

    With the flattened, centred training inputs ``X`` (n x d), covariance
    ``C = X^T X / n = U diag(l) U^T``, the transform is

        ``W = U diag(l + eps)^(-1/2) U^T``,  ``eps = strength * tr(C) / d``,

    i.e. the regulariser is relative to the mean eigenvalue, as in the ZCA
    study of Lee et al. 2020 ("Finite Versus Infinite Neural Networks: an
    Empirical Study") and Shankar et al. 2020. ``strength -> 0`` gives full whitening (covariance of
    the output -> identity on the data's span); large ``strength`` approaches a
    rescaled identity. Computed in float64.

    Args:
        x_train: training inputs (N, ...); images are whitened as whole
            flattened images, as in Lee et al. 2020.
        strength: the regulariser (> 0), e.g. 0.1.

    Returns:
        ``(mean, W)``: the flattened training mean (d,) and the (d, d) transform.
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not np.isfinite(strength) or strength <= 0:
        raise ValueError(f'zca must be a positive regulariser strength relative to '
                         f'the mean eigenvalue (e.g. 0.1), or null to disable; got '
                         f'{strength!r}.')
    x = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    mean = x.mean(axis=0)
    x = x - mean
    cov = x.T @ x / len(x)
    eigvals, eigvecs = np.linalg.eigh(cov)
    eigvals = np.clip(eigvals, 0.0, None)
    eps = strength * np.trace(cov) / cov.shape[0]
    if eps <= 0:
        raise ValueError('zca: the training inputs are constant; nothing to whiten.')
    w = (eigvecs * (eigvals + eps) ** -0.5) @ eigvecs.T
    return mean, w


def zca_whiten(x_train: np.ndarray, x_test: np.ndarray,
               strength: float | None, x_fit: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Applies :func:`fit_zca` (fit on ``x_fit``, default ``x_train``) to
    both splits; shapes kept.

    Fit on fewer images than features, the whitening scales every direction
    the images do not span by ``eps^(-1/2)``, and test images have components
    there: they come out larger than the training images (1000 per-channel
    standardised CIFAR-10 images, ``zca=0.1``: 1.51x their mean norm; fit on
    the 10,000-image training split: 1.06x). Wadia et al. 2021 ("Whitening and
    second order optimization both make information in the dataset unusable
    during training") analyse what whitening with fewer samples than features
    does to generalisation. That case (a ratio beyond
    :data:`ZCA_NORM_RATIO_WARNING`) is logged as a warning with the measured
    ratio, naming ``dataset.stats_from=train_split``, which fits on the whole
    training split, as Lee et al. 2020 fit ZCA on all 50,000 CIFAR-10
    training images.
    """
    if strength is None:
        return x_train, x_test
    x_fit = x_train if x_fit is None else x_fit
    mean, w = fit_zca(x_fit, strength)

    def apply(x):
        flat = np.asarray(x, np.float64).reshape(len(x), -1)
        return ((flat - mean) @ w).reshape(x.shape)
    x_train, x_test = apply(x_train), apply(x_test)
    n, d = len(x_fit), int(np.prod(x_fit.shape[1:]))
    ratio = (_mean_norm(x_test) / _mean_norm(x_train)
             if n <= d and len(x_test) else 1.0)
    if abs(np.log(ratio)) > np.log(ZCA_NORM_RATIO_WARNING):
        log.warning(
            'ZCA fit on %d images of %d features scales the directions they do '
            'not span up by 1/sqrt(zca * mean eigenvalue): test images come out '
            '%.2fx the norm of training images (mean). To fit it on more images: '
            'dataset.stats_from=train_split (the whole training split).',
            n, d, ratio)
    return x_train, x_test


def _mean_norm(x: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(np.reshape(x, (len(x), -1)), axis=1)))


def encode_targets(labels: np.ndarray, n_classes: int, kind: str) -> np.ndarray:
    """Targets from integer labels, always 2-D float64.

    Args:
        labels: integer labels (N,).
        n_classes: number of classes k.
        kind: ``'onehot'``; ``'onehot_centered'``: one-hot minus 1/k, i.e. 0.9
            for the correct class and -0.1 otherwise when k = 10 -- the
            zero-mean targets of Lee et al. 2020 (and Novak et al. 2019), which
            keep the kernel predictor's prior mean at the targets' mean;
            ``'regression'``: the label as one real value, shape (N, 1).

    Returns:
        ``y`` of shape (N, k), or (N, 1) for ``'regression'``.
    """
    labels = np.asarray(labels, np.int64)
    if kind == 'regression':
        return labels.astype(np.float64)[:, None]
    if kind not in TARGETS:
        raise ValueError(f'targets must be one of {TARGETS}, got {kind!r}.')
    y = np.eye(n_classes, dtype=np.float64)[labels]
    if kind == 'onehot_centered':
        y -= 1.0 / n_classes
    return y


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, prod(...)) ; (N, d) arrays are unchanged."""
    return x.reshape(len(x), -1)
