"""The dataset functions that ``conf/dataset/*.yaml`` instantiate.

Every function returns a :class:`~ntkexp.data.dataset.Dataset` and takes the
common options

* ``n_train``, ``n_test``: subset sizes (null = the whole split); subsets of
  labelled data are class-balanced, seeded and nested (see
  :func:`~ntkexp.data.preprocess.balanced_subset`);
* ``n_valid`` (labelled data): 0 (default) or the size of a validation split,
  a seeded class-balanced subset of the training pool left after the
  ``n_train`` subset (:func:`validation_subset`), preprocessed with the
  training statistics; ``experiment=kernel_regression`` scores it as
  ``val_accuracy`` / ``val_mse`` and the tables pick ``diag_reg`` on it;
* ``seed``: the subset / generation seed (independent of the run's init seed);
* ``flatten``: images NHWC (default) or flattened to (N, H*W*C);
* ``standardize``: None | 'per_feature' | 'per_channel' | 'per_image';
* ``zca``: None or the ZCA regulariser relative to the mean eigenvalue
  (Lee et al. 2020), whole flattened images;
* ``stats_from`` (labelled data): 'subset' (default: standardisation and ZCA
  statistics from the ``n_train`` images used) or 'train_split' (from the
  whole training split they are drawn from, as Lee et al. 2020 fit ZCA on all
  50,000 CIFAR-10 training images; no test image enters either way);
* ``targets`` (labelled data): 'onehot' | 'onehot_centered' (Lee et al. 2020) |
  'regression';
* ``classes`` (labelled data): None (all) or a list of class labels to keep,
  relabelled ``0 .. len(classes) - 1`` in the listed order (e.g. ``[0, 1]``:
  the two-class "MNIST2" / "CIFAR2" tasks of Huang et al. 2020);
* ``dtype``: 'float32' (default) or 'float64' for inputs and targets;
* ``cache_dir``: where preprocessed arrays are cached (None = no cache).

Image pixels are scaled to [0, 1] before standardisation / whitening.

Real image sets (``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``) are
looked up in this order: local files in ``data_dir`` (see
:mod:`ntkexp.data.readers` for the formats), local files in ``$NTKEXP_DATA``,
an already prepared tensorflow-datasets copy (in ``data_dir``,
``$NTKEXP_DATA`` and tfds's default directory), and finally -- when
``download`` is true and the network is reachable -- a tfds download into
``data_dir`` (or tfds's default directory). When all fail, the
``FileNotFoundError`` lists what was tried and how to provide the data.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from ntkexp.data import cache as cache_lib
from ntkexp.data import preprocess
from ntkexp.data import readers
from ntkexp.data import synthetic
from ntkexp.data import tfds_source
from ntkexp.data.dataset import Dataset

log = logging.getLogger(__name__)

DTYPES = ('float32', 'float64')
DIGITS_TEST_SIZE = 360  # fixed class-balanced test pool of the 1797 digits
_DIGITS_SPLIT_SEED = 20240601
ENV_DATA = 'NTKEXP_DATA'


def _plain(value):
    """OmegaConf containers -> python lists/dicts (for hashing and checks)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _check_common(dtype: str, standardize: str | None, targets: str | None = None,
                  stats_from: str = 'subset'):
    if stats_from not in preprocess.STATS_FROM:
        raise ValueError(f'stats_from must be one of {preprocess.STATS_FROM}, got '
                         f'{stats_from!r}.')
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {DTYPES}, got {dtype!r}.')
    if standardize not in preprocess.STANDARDIZE:
        raise ValueError(f'standardize must be one of {preprocess.STANDARDIZE}, got '
                         f'{standardize!r}.')
    if targets is not None and targets not in preprocess.TARGETS:
        raise ValueError(f'targets must be one of {preprocess.TARGETS}, got {targets!r}.')


def _preprocess_x(x_train, x_test, *, standardize, zca, flatten, x_fit=None):
    """Standardises and whitens with statistics of ``x_fit`` (default
    ``x_train``), then flattens."""
    if x_fit is not None:
        # x_fit's statistics, computed once, applied to both splits together.
        fit_std, both = preprocess.standardize(
            x_fit, np.concatenate([x_train, x_test]), standardize)
        x_train, x_test = both[:len(x_train)], both[len(x_train):]
        x_train, x_test = preprocess.zca_whiten(x_train, x_test, zca, x_fit=fit_std)
    else:
        x_train, x_test = preprocess.standardize(x_train, x_test, standardize)
        x_train, x_test = preprocess.zca_whiten(x_train, x_test, zca)
    if flatten:
        x_train, x_test = preprocess.flatten(x_train), preprocess.flatten(x_test)
    return x_train, x_test


def check_classes(classes, n_classes: int) -> list[int] | None:
    """Validates ``classes``: None, or distinct labels in ``[0, n_classes)``.

    Raises:
        ValueError: naming the bad entry and the valid range.
    """
    classes = _plain(classes)
    if classes is None:
        return None
    if isinstance(classes, (int, np.integer)) or not isinstance(classes, (list, tuple)):
        raise ValueError(f'classes must be a list of class labels such as [0, 1], or '
                         f'null for all {n_classes}; got {classes!r}.')
    bad = [c for c in classes
           if isinstance(c, bool) or not isinstance(c, (int, np.integer))
           or not 0 <= c < n_classes]
    if bad:
        raise ValueError(f'classes={classes}: {bad} not a class label; the labels are '
                         f'the integers 0 .. {n_classes - 1}.')
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f'classes={classes}: give at least two distinct labels (null '
                         'keeps all classes).')
    return [int(c) for c in classes]


def select_classes(raw: readers.RawSplits, classes) -> readers.RawSplits:
    """Keeps the examples of ``classes``, relabelled ``0 .. len(classes) - 1``.

    Label ``classes[i]`` becomes ``i`` in both splits (so ``[9, 4]`` makes 9
    the first class); ``n_classes`` becomes ``len(classes)``.
    """
    classes = check_classes(classes, raw.n_classes)
    if classes is None:
        return raw
    relabel = np.full(raw.n_classes, -1, np.int64)
    relabel[classes] = np.arange(len(classes))

    def keep(x, labels):
        new = relabel[np.asarray(labels, np.int64)]
        mask = new >= 0
        return x[mask], new[mask]
    x_train, labels_train = keep(raw.x_train, raw.labels_train)
    x_test, labels_test = keep(raw.x_test, raw.labels_test)
    return readers.RawSplits(x_train, labels_train, x_test, labels_test, len(classes),
                             f'{raw.source} classes {classes}')


def check_n_valid(n_valid) -> int:
    """``n_valid`` as an int >= 0 (None = 0)."""
    if n_valid is None:
        return 0
    if (isinstance(n_valid, bool) or not isinstance(n_valid, (int, np.integer))
            or n_valid < 0):
        raise ValueError(f'n_valid must be an integer >= 0 (0 = no validation split), '
                         f'got {n_valid!r}.')
    return int(n_valid)


def validation_subset(labels_train: np.ndarray, idx_train: np.ndarray, n_valid: int,
                      seed: int) -> np.ndarray:
    """Indices of a validation split: a seeded class-balanced subset of
    ``n_valid`` examples of the training pool outside ``idx_train``.

    The training subset is the one drawn without a validation split, so
    ``dataset.n_valid`` changes no training or test example.

    Raises:
        ValueError: fewer than ``n_valid`` pool examples are left.
    """
    if not n_valid:
        return np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels_train)), idx_train)
    if n_valid > len(rest):
        raise ValueError(
            f'n_valid={n_valid}: only {len(rest)} examples of the {len(labels_train)}-example '
            f'training pool are left after the n_train={len(idx_train)} training subset; '
            f'lower dataset.n_valid or dataset.n_train (n_train + n_valid <= '
            f'{len(labels_train)}; n_train=null takes the whole pool).')
    return rest[preprocess.balanced_subset(labels_train[rest], n_valid, [seed, 2],
                                           'dataset.n_valid')]


def _from_labelled(name: str, raw: readers.RawSplits, *, n_train, n_test, seed,
                   flatten, standardize, zca, targets, dtype, pixel_scale,
                   stats_from='subset', classes=None, n_valid=0) -> Dataset:
    """Select classes, subset, scale, standardise, whiten and encode labelled
    images."""
    raw = select_classes(raw, classes)
    idx_train = preprocess.balanced_subset(raw.labels_train, n_train, [seed, 0],
                                           'dataset.n_train')
    idx_test = preprocess.balanced_subset(raw.labels_test, n_test, [seed, 1], 'dataset.n_test')
    idx_valid = validation_subset(raw.labels_train, idx_train, n_valid, seed)
    x_train = raw.x_train[idx_train].astype(np.float64) / pixel_scale
    # The validation images ride with the test images: training statistics.
    x_test = np.concatenate([raw.x_test[idx_test], raw.x_train[idx_valid]]
                            ).astype(np.float64) / pixel_scale
    labels_train = raw.labels_train[idx_train].astype(np.int64)
    labels_test = raw.labels_test[idx_test].astype(np.int64)
    labels_valid = raw.labels_train[idx_valid].astype(np.int64)
    x_fit = None
    if stats_from == 'train_split' and (standardize or zca is not None):
        x_fit = raw.x_train.astype(np.float64) / pixel_scale
    x_train, x_test = _preprocess_x(x_train, x_test, standardize=standardize, zca=zca,
                                    flatten=flatten, x_fit=x_fit)
    x_test, x_valid = x_test[:len(idx_test)], x_test[len(idx_test):]
    y_train, y_test, y_valid = (preprocess.encode_targets(labels, raw.n_classes, targets)
                                for labels in (labels_train, labels_test, labels_valid))
    valid = {}
    if n_valid:
        valid = dict(x_valid=x_valid.astype(dtype), y_valid=y_valid.astype(dtype),
                     labels_valid=labels_valid)
    return Dataset(
        name=name, x_train=x_train.astype(dtype), y_train=y_train.astype(dtype),
        x_test=x_test.astype(dtype), y_test=y_test.astype(dtype),
        labels_train=labels_train, labels_test=labels_test, n_classes=raw.n_classes,
        task='regression' if targets == 'regression' else 'classification',
        source=raw.source, **valid)


# --------------------------------------------------------------------------- digits


def _digits_raw() -> readers.RawSplits:
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
    bunch = load_digits()
    images = bunch.images.astype(np.float64)[..., None]  # (1797, 8, 8, 1) in [0, 16]
    labels = bunch.target.astype(np.int64)
    test = np.zeros(len(labels), bool)
    test[preprocess.balanced_subset(labels, DIGITS_TEST_SIZE, _DIGITS_SPLIT_SEED)] = True
    return readers.RawSplits(images[~test], labels[~test], images[test], labels[test],
                             10, 'sklearn:load_digits')


def digits(name: str = 'digits', n_train: int | None = None, n_test: int | None = None,
           seed: int = 0, flatten: bool = False, standardize: str | None = None,
           zca: float | None = None, targets: str = 'onehot', dtype: str = 'float32',
           cache_dir: str | None = None, stats_from: str = 'subset',
           classes: list[int] | None = None, n_valid: int | None = 0) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (no network needed).

    1797 images (N, 8, 8, 1), pixels scaled from [0, 16] to [0, 1], 10
    classes. There is no official split: a fixed class-balanced test pool of
    :data:`DIGITS_TEST_SIZE` images (the same for every seed) and a training
    pool of the remaining 1437; ``n_train`` / ``n_test`` draw seeded balanced
    subsets from these pools.

    Args:
        name: the dataset's name.
        n_train: training examples (<= 1437; None = all).
        n_test: test examples (<= 360; None = all).
        seed: subset seed.
        flatten: return (N, 64) instead of (N, 8, 8, 1).
        standardize: see :func:`ntkexp.data.preprocess.standardize`.
        zca: ZCA regulariser (relative to the mean eigenvalue) or None.
        targets: 'onehot', 'onehot_centered' or 'regression'.
        dtype: 'float32' or 'float64'.
        cache_dir: on-disk cache directory, or None.
        stats_from: 'subset' or 'train_split' (the 1437-image training pool):
            where standardisation and ZCA statistics come from.
        classes: None (all 10) or the digits to keep, relabelled in order.
        n_valid: validation examples from the training pool outside the
            ``n_train`` subset (0 = none; :func:`validation_subset`).

    Returns:
        The :class:`Dataset`.
    """
    _check_common(dtype, standardize, targets, stats_from)
    classes = check_classes(classes, 10)
    n_valid = check_n_valid(n_valid)
    options = dict(kind='digits', n_train=n_train, n_test=n_test, seed=seed,
                   flatten=flatten, standardize=standardize, zca=zca, targets=targets,
                   dtype=dtype, **_stats_key(stats_from), **_classes_key(classes),
                   **_valid_key(n_valid))
    return cache_lib.cached(cache_dir, name, options, lambda: _from_labelled(
        name, _digits_raw(), n_train=n_train, n_test=n_test, seed=seed, flatten=flatten,
        standardize=standardize, zca=zca, targets=targets, dtype=dtype, pixel_scale=16.0,
        stats_from=stats_from, classes=classes, n_valid=n_valid))


# ------------------------------------------------------------------- real image sets


def _abs(path: str | None) -> str | None:
    return None if path in (None, '') else os.path.abspath(os.path.expanduser(str(path)))


def how_to_provide(name: str) -> str:
    """The fix-it sentence for a dataset that cannot be found."""
    return (f'To fix: pass dataset.data_dir=DIR (or set {ENV_DATA}=DIR), where DIR holds '
            f'{readers.FORMAT_HELP[name]} (directly or in DIR/{name}/), or is a '
            f'tensorflow-datasets data_dir with {name!r} prepared; or run once on a '
            f'machine with network access with dataset.download=true so that '
            f'tensorflow-datasets downloads it.')


def load_raw(name: str, data_dir: str | None = None,
             download: bool = False) -> readers.RawSplits:
    """Finds and reads the raw images and labels of a real image dataset.

    Resolution order: local files in ``data_dir``, local files in
    ``$NTKEXP_DATA``, a prepared tfds copy (``data_dir``, ``$NTKEXP_DATA``,
    tfds's default directory), then a tfds download when ``download``.

    Args:
        name: 'mnist', 'fashion_mnist', 'cifar10' or 'cifar100'.
        data_dir: a directory of local files or a tfds data_dir; None = only
            ``$NTKEXP_DATA`` and tfds's default.
        download: allow tfds to download (skipped at once when offline).

    Returns:
        The raw uint8 NHWC images and integer labels of both official splits.

    Raises:
        FileNotFoundError: listing every place tried and how to provide the data.
    """
    roots = []
    if _abs(data_dir):
        roots.append(('dataset.data_dir', _abs(data_dir)))
        if not os.path.isdir(_abs(data_dir)):
            # Often a typo; say so before another copy is used in its place.
            log.warning('dataset.data_dir=%s: no such directory; looking for %s '
                        'in the other places instead', data_dir, name)
    env = _abs(os.environ.get(ENV_DATA))
    if env and env not in [r for _, r in roots]:
        roots.append((f'${ENV_DATA}', env))
    tried = []
    for label, root in roots:
        splits, reasons = readers.find_local(name, root)
        if splits is not None:
            return splits
        tried += [f'local files ({label}) {reason}' for reason in reasons]
    try:
        import tensorflow_datasets  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError as err:
        tried.append(f'tensorflow-datasets: cannot import it ({err})')
    else:
        tfds_dirs = [root for _, root in roots if os.path.isdir(root)]
        if tfds_source.default_data_dir() not in tfds_dirs:
            tfds_dirs.append(tfds_source.default_data_dir())
        for tfds_dir in tfds_dirs:
            splits, reason = tfds_source.load_prepared(name, tfds_dir)
            if splits is not None:
                return splits
            tried.append(reason)
        if download:
            splits, reason = tfds_source.download(
                name, roots[0][1] if roots else tfds_source.default_data_dir())
            if splits is not None:
                return splits
            tried.append(reason)
        else:
            tried.append('tfds download: disabled (dataset.download=false)')
    raise FileNotFoundError(
        f'Dataset {name!r} not found. Tried:\n' + ''.join(f'  - {t}\n' for t in tried)
        + how_to_provide(name))


def _stats_key(stats_from: str) -> dict[str, str]:
    """``stats_from`` for the cache key; the default adds nothing, so arrays
    cached before the option existed are found again."""
    return {} if stats_from == 'subset' else {'stats_from': stats_from}


def _classes_key(classes: list[int] | None) -> dict[str, list[int]]:
    """``classes`` for the cache key; None adds nothing (as :func:`_stats_key`)."""
    return {} if classes is None else {'classes': list(classes)}


def _valid_key(n_valid: int) -> dict[str, int]:
    """``n_valid`` for the cache key; 0 adds nothing (as :func:`_stats_key`)."""
    return {'n_valid': n_valid} if n_valid else {}


def _image_dataset(kind: str, name, n_train, n_test, seed, flatten, standardize, zca,
                   targets, dtype, data_dir, download, cache_dir,
                   stats_from='subset', classes=None, n_classes=10, n_valid=0) -> Dataset:
    _check_common(dtype, standardize, targets, stats_from)
    classes = check_classes(classes, n_classes)
    preprocess.check_size(n_train, 'n_train')
    preprocess.check_size(n_test, 'n_test')
    n_valid = check_n_valid(n_valid)
    data_dir = _abs(data_dir)
    options = dict(kind=kind, n_train=n_train, n_test=n_test, seed=seed, flatten=flatten,
                   standardize=standardize, zca=zca, targets=targets, dtype=dtype,
                   data_dir=data_dir, env_data=_abs(os.environ.get(ENV_DATA)),
                   **_stats_key(stats_from), **_classes_key(classes), **_valid_key(n_valid))
    return cache_lib.cached(cache_dir, name, options, lambda: _from_labelled(
        name, load_raw(kind, data_dir, download), n_train=n_train, n_test=n_test,
        seed=seed, flatten=flatten, standardize=standardize, zca=zca, targets=targets,
        dtype=dtype, pixel_scale=255.0, stats_from=stats_from, classes=classes,
        n_valid=n_valid))


_IMAGE_DOC = """{title}

    {shape}, pixels scaled to [0, 1]; {classes} classes; the official
    train / test splits, from which ``n_train`` / ``n_test`` draw seeded
    class-balanced subsets.

    Args:
        name: the dataset's name.
        n_train: training examples (None = the whole split available).
        n_test: test examples (None = all).
        seed: subset seed.
        flatten: return (N, H*W*C) instead of NHWC images.
        standardize: None, 'per_feature', 'per_channel' or 'per_image'.
        zca: ZCA regulariser relative to the mean eigenvalue (Lee et al. 2020;
            e.g. 0.1), over whole flattened images; None = no whitening.
        targets: 'onehot', 'onehot_centered' (one-hot minus 1/k, Lee et al.
            2020) or 'regression' (the label as a number).
        dtype: 'float32' or 'float64'.
        data_dir: local copies ({formats}) or a tfds data_dir; None = only
            ``$NTKEXP_DATA`` and tfds's default directory.
        download: allow tensorflow-datasets to download when no copy is found.
        cache_dir: on-disk cache of the preprocessed arrays, or None.
        stats_from: 'subset' (the ``n_train`` images) or 'train_split' (the
            whole training split, as Lee et al. 2020 fit ZCA on all of
            CIFAR-10's): where standardisation and ZCA statistics come from.
        classes: None (all) or the class labels to keep, relabelled
            ``0 .. len(classes) - 1`` in the listed order (``[0, 1]``: a
            two-class task as in Huang et al. 2020).
        n_valid: validation examples from the training split outside the
            ``n_train`` subset (0 = none; :func:`validation_subset`).

    Returns:
        The :class:`Dataset`.

    Raises:
        FileNotFoundError: when no copy is found, listing the places tried.
    """


def _make_image_fn(kind: str, title: str, shape: str, classes: int):
    classes_total = classes

    def fn(name: str = kind, n_train: int | None = None, n_test: int | None = None,
           seed: int = 0, flatten: bool = False, standardize: str | None = None,
           zca: float | None = None, targets: str = 'onehot', dtype: str = 'float32',
           data_dir: str | None = None, download: bool = True,
           cache_dir: str | None = None, stats_from: str = 'subset',
           classes: list[int] | None = None, n_valid: int | None = 0) -> Dataset:
        return _image_dataset(kind, name, n_train, n_test, seed, flatten, standardize,
                              zca, targets, dtype, data_dir, download, cache_dir,
                              stats_from, classes, n_classes=classes_total,
                              n_valid=n_valid)
    fn.__name__ = fn.__qualname__ = kind
    fn.__doc__ = _IMAGE_DOC.format(title=title, shape=shape, classes=classes,
                                   formats=readers.FORMAT_HELP[kind])
    return fn


mnist = _make_image_fn('mnist', 'MNIST handwritten digits (LeCun et al. 1998).',
                       '60,000 + 10,000 images (N, 28, 28, 1)', 10)
fashion_mnist = _make_image_fn('fashion_mnist', 'Fashion-MNIST (Xiao et al. 2017).',
                               '60,000 + 10,000 images (N, 28, 28, 1)', 10)
cifar10 = _make_image_fn('cifar10', 'CIFAR-10 (Krizhevsky 2009).',
                         '50,000 + 10,000 images (N, 32, 32, 3)', 10)
cifar100 = _make_image_fn('cifar100', 'CIFAR-100, fine labels (Krizhevsky 2009).',
                          '50,000 + 10,000 images (N, 32, 32, 3)', 100)


# ------------------------------------------------------------------ generated data


def _generated(kind: str, name: str, *, n_train, n_test, seed, target, standardize,
               zca, dtype, cache_dir, d=2, grid=False, scale=1.0, noise=0.0) -> Dataset:
    _check_common(dtype, standardize)
    n_train = preprocess.check_size(n_train, 'n_train', allow_none=False)
    n_test = preprocess.check_size(n_test, 'n_test', allow_none=False)
    d = preprocess.check_size(d, 'd', allow_none=False)
    target = _plain(target)
    synthetic.target_values(np.ones((1, d)), target)  # validate names early
    if noise < 0:
        raise ValueError(f'noise must be >= 0, got {noise}.')

    def build():
        x_train, y_train, x_test, y_test = synthetic.generate(
            kind, n_train, n_test, seed, target, d=d, grid=grid, scale=scale, noise=noise)
        x_train, x_test = _preprocess_x(x_train, x_test, standardize=standardize,
                                        zca=zca, flatten=False)
        return Dataset(name=name, x_train=x_train.astype(dtype),
                       y_train=y_train.astype(dtype), x_test=x_test.astype(dtype),
                       y_test=y_test.astype(dtype), task='regression',
                       source='generated')
    options = dict(kind=kind, n_train=n_train, n_test=n_test, seed=seed, target=target,
                   standardize=standardize, zca=zca, dtype=dtype, d=d, grid=grid,
                   scale=scale, noise=noise)
    return cache_lib.cached(cache_dir, name, options, build)


def circle(name: str = 'circle', n_train: int = 256, n_test: int = 256, seed: int = 0,
           target: str | list[str] = 'x1*x2', grid: bool = False, noise: float = 0.0,
           flatten: bool = False, standardize: str | None = None,
           zca: float | None = None, dtype: str = 'float32',
           cache_dir: str | None = None) -> Dataset:
    """Points on the unit circle, Jacot et al. 2018 ("Neural Tangent Kernel").

    Inputs ``x = (cos g, sin g)`` (N, 2) with g uniform on [0, 2 pi); with
    ``grid=True`` the test points are evenly spaced, ``g = 2 pi i / n_test``,
    the abscissa of Jacot et al.'s Fig. 1 (the angle is ``arctan2(x2, x1)``).
    Fig. 2 uses 4 training points on the circle.

    Args:
        name: the dataset's name.
        n_train: training points.
        n_test: test points.
        seed: generation seed (train and test streams are independent).
        target: a target name or list (see
            :func:`ntkexp.data.synthetic.target_values`): 'x1*x2' (default),
            'x1', 'linear', 'sin', 'relu', 'norm', 'harmonic_<k>'
            (= sqrt(2) cos(k g) here).
        grid: evenly spaced test points.
        noise: Gaussian noise std added to the training targets.
        flatten: accepted for uniformity; inputs are already (N, 2).
        standardize: see :func:`ntkexp.data.preprocess.standardize`.
        zca: ZCA regulariser or None.
        dtype: 'float32' or 'float64'.
        cache_dir: on-disk cache directory, or None.

    Returns:
        A regression :class:`Dataset`.
    """
    del flatten  # vectors already
    return _generated('circle', name, n_train=n_train, n_test=n_test, seed=seed,
                      target=target, standardize=standardize, zca=zca, dtype=dtype,
                      cache_dir=cache_dir, d=2, grid=grid, noise=noise)


def sphere(name: str = 'sphere', d: int = 3, n_train: int = 256, n_test: int = 256,
           seed: int = 0, target: str | list[str] = 'x1*x2', noise: float = 0.0,
           flatten: bool = False, standardize: str | None = None,
           zca: float | None = None, dtype: str = 'float32',
           cache_dir: str | None = None) -> Dataset:
    """Uniform points on the unit sphere S^(d-1), for kernel spectra.

    A dot-product kernel (the infinite-width NTK / NNGP of an FC network on
    the sphere) is diagonal in spherical harmonics, so targets such as
    ``harmonic_k`` (a degree-k zonal harmonic of unit variance) or ``x1*x2``
    (degree 2) probe one eigenspace at a time (Jacot et al. 2018 Sec. 5;
    Kopitkov & Indelman 2019).

    Args:
        name: the dataset's name.
        d: ambient dimension (inputs are (N, d)).
        n_train: training points.
        n_test: test points.
        seed: generation seed.
        target: a target name or list (see
            :func:`ntkexp.data.synthetic.target_values`).
        noise: Gaussian noise std added to the training targets.
        flatten: accepted for uniformity; inputs are already (N, d).
        standardize: see :func:`ntkexp.data.preprocess.standardize`.
        zca: ZCA regulariser or None.
        dtype: 'float32' or 'float64'.
        cache_dir: on-disk cache directory, or None.

    Returns:
        A regression :class:`Dataset`.
    """
    del flatten
    if isinstance(d, int) and not isinstance(d, bool) and d < 2:
        raise ValueError(f'sphere: d must be >= 2 (S^(d-1) in R^d), got d={d}.')
    return _generated('sphere', name, n_train=n_train, n_test=n_test, seed=seed,
                      target=target, standardize=standardize, zca=zca, dtype=dtype,
                      cache_dir=cache_dir, d=d, noise=noise)


def gaussian(name: str = 'gaussian', d: int = 2, n_train: int = 256, n_test: int = 256,
             seed: int = 0, target: str | list[str] = 'x1*x2', scale: float = 1.0,
             noise: float = 0.0, flatten: bool = False,
             standardize: str | None = None, zca: float | None = None,
             dtype: str = 'float32', cache_dir: str | None = None) -> Dataset:
    """Gaussian inputs ``x ~ N(0, scale^2 I_d)`` with a regression target.

    Jacot et al. 2018 Fig. 1 trains on ``f*(x) = x1 * x2`` with N(0, 1) inputs
    in d = 2 (the defaults).

    Args:
        name: the dataset's name.
        d: input dimension.
        n_train: training points.
        n_test: test points.
        seed: generation seed.
        target: a target name or list (see
            :func:`ntkexp.data.synthetic.target_values`).
        scale: input standard deviation.
        noise: Gaussian noise std added to the training targets.
        flatten: accepted for uniformity; inputs are already (N, d).
        standardize: see :func:`ntkexp.data.preprocess.standardize`.
        zca: ZCA regulariser or None.
        dtype: 'float32' or 'float64'.
        cache_dir: on-disk cache directory, or None.

    Returns:
        A regression :class:`Dataset`.
    """
    del flatten
    return _generated('gaussian', name, n_train=n_train, n_test=n_test, seed=seed,
                      target=target, standardize=standardize, zca=zca, dtype=dtype,
                      cache_dir=cache_dir, d=d, scale=scale, noise=noise)


# ---------------------------------------------------------------------- convenience

DATASETS = {
    'digits': digits, 'mnist': mnist, 'fashion_mnist': fashion_mnist,
    'cifar10': cifar10, 'cifar100': cifar100,
    'circle': circle, 'sphere': sphere, 'gaussian': gaussian,
}


def load_dataset(cfg_or_name: Any, **overrides) -> Dataset:
    """Builds a dataset from a config node, a dict, or a name.

    Args:
        cfg_or_name: a ``conf/dataset`` node or dict (with ``_target_``, as in
            ``cfg.dataset``, or just a ``name`` plus options), or a dataset name
            such as ``'mnist'``.
        **overrides: options replacing those of the config.

    Returns:
        The :class:`Dataset`.

    Examples:
        ``load_dataset('digits', n_train=100)``;
        ``load_dataset(cfg.dataset)``.
    """
    if isinstance(cfg_or_name, str):
        options = {'name': cfg_or_name}
    else:
        options = dict(_plain(cfg_or_name))
    options.update(overrides)
    target = options.pop('_target_', None)
    if target is not None:
        from hydra.utils import get_method  # pylint: disable=import-outside-toplevel
        return get_method(target)(**options)
    name = options.get('name')
    if name not in DATASETS:
        raise ValueError(f'Unknown dataset {name!r}; known: {", ".join(DATASETS)} (or '
                         'give a config with _target_).')
    return DATASETS[name](**options)
