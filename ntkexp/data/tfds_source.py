"""Image datasets through tensorflow-datasets (tfds), with or without TensorFlow.

Reading prefers ``tfds.data_source`` (random access to array_record files; needs
no TensorFlow, so it works on machines that only have JAX). A copy that tfds
prepared in its default TFRecord format needs TensorFlow to read; when
TensorFlow is installed, ``tfds.load`` is used for it (with TensorFlow kept off
the GPUs, which belong to JAX). tensorflow_datasets and TensorFlow are imported
only when a dataset is actually read through tfds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import tempfile

import numpy as np

from ntkexp.data.readers import RawSplits

# Hosts tfds downloads these datasets from (its GCS mirror first).
_DOWNLOAD_HOST = 'storage.googleapis.com'
_CHUNK = 4096


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed (without importing it)."""
    try:
        return importlib.util.find_spec('tensorflow') is not None
    except (ImportError, ValueError):
        return False


def default_data_dir() -> str:
    """tfds's own data directory: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    return os.environ.get('TFDS_DATA_DIR') or os.path.join(
        os.path.expanduser('~'), 'tensorflow_datasets')


def network_available(host: str = _DOWNLOAD_HOST) -> bool:
    """Cheap check that a download can start: ``host`` resolves, or a proxy is set.

    tfds retries a failing download for minutes; this lets an offline machine
    fail at once with a useful message instead.
    """
    if any(os.environ.get(v) for v in ('HTTPS_PROXY', 'https_proxy', 'ALL_PROXY')):
        return True
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def tfds_scratch_dir():
    """Gives tfds a private temporary directory, removed on exit.

    Constructing a tfds builder for a dataset that is not prepared calls
    ``DatasetInfo.initialize_from_bucket``, which makes a ``tempfile.mkdtemp``
    directory and never removes it (tensorflow-datasets 4.9): every offline
    look-up would leave an empty ``/tmp/tmp*tfds`` behind. Inside this block
    Python's default temporary directory is a fresh one of ours, deleted with
    whatever tfds left in it.
    """
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix='ntkexp-tfds-') as scratch:
        tempfile.tempdir = scratch
        try:
            yield scratch
        finally:
            tempfile.tempdir = previous


def _stack(records, n_classes_hint=None):
    """Stacks a sequence of ``{'image', 'label'}`` records into arrays."""
    n = len(records)
    if n == 0:
        raise ValueError('tfds returned an empty split.')
    first = records[0]
    x = np.empty((n,) + np.shape(first['image']), np.asarray(first['image']).dtype)
    labels = np.empty((n,), np.int64)
    for start in range(0, n, _CHUNK):
        keys = list(range(start, min(n, start + _CHUNK)))
        try:
            batch = records.__getitems__(keys)
        except (AttributeError, TypeError):  # older tfds, or tfds's mock
            batch = [records[i] for i in keys]
        for i, record in zip(keys, batch):
            x[i] = record['image']
            labels[i] = record['label']
    return x, labels


def _num_classes(info) -> int:
    return int(info.features['label'].num_classes)


def read_with_data_source(name: str, data_dir: str | None,
                          download: bool = False) -> RawSplits:
    """Reads both splits with ``tfds.data_source`` (no TensorFlow needed).

    Args:
        name: the tfds name ('mnist', 'fashion_mnist', 'cifar10', 'cifar100').
        data_dir: tfds data directory; None = tfds's default.
        download: let tfds download and prepare the data (array_record format).

    Returns:
        The raw splits.
    """
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    splits = {}
    info = None
    for split in ('train', 'test'):
        source = tfds.data_source(name, split=split, data_dir=data_dir,
                                  download=download)
        splits[split] = _stack(source)
        info = source.dataset_info
    return RawSplits(*splits['train'], *splits['test'], _num_classes(info),
                     f'tfds:{data_dir or default_data_dir()}')


def read_with_tensorflow(name: str, data_dir: str | None,
                         download: bool = False) -> RawSplits:
    """Reads both splits with ``tfds.load`` (needs TensorFlow; any file format).

    TensorFlow is hidden from the GPUs first so that it does not take the
    accelerator memory JAX needs.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    try:
        tf.config.set_visible_devices([], 'GPU')
    except (RuntimeError, ValueError):  # already initialised: leave it
        pass
    splits = {}
    datasets, info = tfds.load(name, split=['train', 'test'], data_dir=data_dir,
                               download=download, as_supervised=True,
                               with_info=True, batch_size=_CHUNK)
    for split, ds in zip(('train', 'test'), datasets):
        xs, ys = [], []
        for x, y in tfds.as_numpy(ds):
            xs.append(x)
            ys.append(y)
        splits[split] = (np.concatenate(xs), np.concatenate(ys).astype(np.int64))
    return RawSplits(*splits['train'], *splits['test'], _num_classes(info),
                     f'tfds:{data_dir or default_data_dir()}')


def _prepared_format(name: str, data_dir: str | None) -> str | None:
    """File format of a prepared copy in ``data_dir`` ('tfrecord', ...), or None."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            return None
        return str(builder.info.file_format.value)
    except Exception:  # pylint: disable=broad-except
        return None


@contextlib.contextmanager
def _quiet_probe():
    """Silences tfds's absl warnings while looking for a prepared copy (a
    missing one is reported once, in the not-found error's list)."""
    logger = logging.getLogger('absl')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _short(err: BaseException) -> str:
    text = ' '.join(str(err).split())
    text = text if len(text) < 240 else text[:237] + '...'
    return f'{type(err).__name__}: {text}'


def load_prepared(name: str, data_dir: str | None) -> tuple[RawSplits | None, str]:
    """Reads an already prepared tfds copy from ``data_dir`` (never downloads).

    Args:
        name: the tfds name.
        data_dir: tfds data directory; None = tfds's default.

    Returns:
        ``(splits, '')``, or ``(None, reason)`` when there is no readable copy.
    """
    with tfds_scratch_dir():
        return _load_prepared(name, data_dir)


def _load_prepared(name: str, data_dir: str | None) -> tuple[RawSplits | None, str]:
    with _quiet_probe():
        try:
            return read_with_data_source(name, data_dir, download=False), ''
        except Exception as err:  # pylint: disable=broad-except
            data_source_error = err
        fmt = _prepared_format(name, data_dir)
    where = data_dir or default_data_dir()
    if fmt is None:
        return None, f'tfds {name!r} in {where}: not prepared there'
    if fmt == 'array_record':
        return None, (f'tfds {name!r} in {where}: prepared but unreadable '
                      f'({_short(data_source_error)})')
    if not tensorflow_available():
        return None, (f'tfds {name!r} in {where}: prepared in {fmt} format, which '
                      'needs TensorFlow to read (pip install tensorflow-cpu), or '
                      're-prepare it with file_format=array_record')
    try:
        return read_with_tensorflow(name, data_dir, download=False), ''
    except Exception as err:  # pylint: disable=broad-except
        return None, f'tfds {name!r} in {where} via tfds.load: {_short(err)}'


def download(name: str, data_dir: str | None) -> tuple[RawSplits | None, str]:
    """Lets tfds download and prepare ``name`` into ``data_dir``, then reads it.

    Tries ``tfds.data_source`` (array_record, no TensorFlow), then
    ``tfds.load`` when TensorFlow is installed.

    Returns:
        ``(splits, '')``, or ``(None, reason)``.
    """
    where = data_dir or default_data_dir()
    if not network_available():
        return None, (f'tfds download of {name!r} into {where}: skipped, no network '
                      f'(cannot resolve {_DOWNLOAD_HOST})')
    reasons = []
    with tfds_scratch_dir():
        try:
            return read_with_data_source(name, data_dir, download=True), ''
        except Exception as err:  # pylint: disable=broad-except
            reasons.append(f'tfds.data_source download into {where}: {_short(err)}')
        if tensorflow_available():
            try:
                return read_with_tensorflow(name, data_dir, download=True), ''
            except Exception as err:  # pylint: disable=broad-except
                reasons.append(f'tfds.load download into {where}: {_short(err)}')
    return None, '; '.join(reasons)
