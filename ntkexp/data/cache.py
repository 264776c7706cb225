"""On-disk cache of preprocessed datasets, keyed by their options.

A sweep over models or regularisers then reads the whitened arrays instead of
reloading and re-whitening. Entries are ``.npz`` files named
``<name>-<hash>.npz`` where the hash covers every option that changes the
arrays (and :data:`VERSION`, bumped when preprocessing changes). Writes are
atomic, so parallel jobs can share a cache directory.

The key covers the options and the data directories, not the raw files'
contents: after replacing the raw data in place, delete the cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Callable

import numpy as np

from ntkexp.data.dataset import Dataset

VERSION = 1
_ARRAYS = ('x_train', 'y_train', 'x_test', 'y_test', 'labels_train', 'labels_test',
           'x_valid', 'y_valid', 'labels_valid')


def cache_key(options: dict[str, Any]) -> str:
    """A stable hash of JSON-serialisable options."""
    text = json.dumps({'version': VERSION, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(cache_dir: str, name: str, options: dict[str, Any]) -> str:
    """The file that holds the dataset built with ``options``."""
    return os.path.join(os.path.expanduser(cache_dir), f'{name}-{cache_key(options)}.npz')


def save(path: str, data: Dataset, options: dict[str, Any]) -> None:
    """Writes ``data`` (and the options, for humans) atomically to ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = {k: getattr(data, k) for k in _ARRAYS if getattr(data, k) is not None}
    meta = {'name': data.name, 'n_classes': data.n_classes, 'task': data.task,
            'source': data.source, 'options': options, 'version': VERSION}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp.npz')
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, meta=np.array(json.dumps(meta, default=str)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: str) -> Dataset | None:
    """Reads a cached dataset, or None if absent or unreadable."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f['meta']))
            arrays = {k: f[k] if k in f.files else None for k in _ARRAYS}
    except (OSError, ValueError, KeyError):  # corrupt or foreign file: rebuild
        return None
    return Dataset(name=meta['name'], n_classes=meta['n_classes'], task=meta['task'],
                   source=f'cache:{path} (from {meta["source"]})', **arrays)


def cached(cache_dir: str | None, name: str, options: dict[str, Any],
           build: Callable[[], Dataset]) -> Dataset:
    """Returns the cached dataset for ``options``, building and saving it if needed.

    Args:
        cache_dir: the cache directory; None disables caching.
        name: the dataset's name (file-name prefix).
        options: everything that determines the arrays.
        build: makes the dataset when it is not cached.
    """
    if cache_dir is None:
        return build()
    path = cache_path(cache_dir, name, options)
    data = load(path)
    if data is None:
        data = build()
        save(path, data, options)
    return data
