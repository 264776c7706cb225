"""Readers for local copies of the image datasets (no network, no TensorFlow).

Formats:

* MNIST / Fashion-MNIST: the original LeCun IDX files, gzipped or not
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``), also inside
  torchvision's ``MNIST/raw`` / ``FashionMNIST/raw`` layout.
* CIFAR-10 / CIFAR-100: ``.npz`` files holding ``x`` (uint8, NHWC) and ``y``
  (integer labels), one file whose name contains ``train`` and one whose name
  contains ``test`` (e.g. ``cifar10_train10k.npz``, ``cifar10_test1k.npz``);
  or the official python pickles (``cifar-10-batches-py``, ``cifar-100-python``).

:func:`find_local` looks for these under a directory and its conventional
sub-folders and says what it tried when nothing matches.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import re
import zipfile
import zlib

import numpy as np

# IDX type codes (byte 3 of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype('>u1'),
    0x09: np.dtype('>i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}

MNIST_FILES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}

# Sub-folders of a data directory searched for each dataset ('' = the
# directory itself).
SUBDIRS = {
    'mnist': ('', 'mnist', 'MNIST', 'MNIST/raw'),
    'fashion_mnist': ('', 'fashion_mnist', 'fashion-mnist', 'FashionMNIST',
                      'FashionMNIST/raw'),
    'cifar10': ('', 'cifar10', 'cifar-10', 'CIFAR10'),
    'cifar100': ('', 'cifar100', 'cifar-100', 'CIFAR100'),
}

# Official python-pickle folders: (folder, train files, test file, label key).
_PICKLE_LAYOUTS = {
    'cifar10': ('cifar-10-batches-py',
                tuple(f'data_batch_{i}' for i in range(1, 6)), 'test_batch',
                b'labels'),
    'cifar100': ('cifar-100-python', ('train',), 'test', b'fine_labels'),
}

FORMAT_HELP = {
    'mnist': ('MNIST IDX files ' + ', '.join(f'{f}.gz' for f in MNIST_FILES.values())),
    'fashion_mnist': ('Fashion-MNIST IDX files '
                      + ', '.join(f'{f}.gz' for f in MNIST_FILES.values())),
    'cifar10': ('CIFAR-10 .npz files with x (uint8, N x 32 x 32 x 3) and y, one named '
                '*train*.npz and one *test*.npz, or the cifar-10-batches-py folder'),
    'cifar100': ('CIFAR-100 .npz files with x (uint8, N x 32 x 32 x 3) and y (fine '
                 'labels), one named *train*.npz and one *test*.npz, or the '
                 'cifar-100-python folder'),
}


@dataclasses.dataclass(frozen=True)
class RawSplits:
    """Raw (un-preprocessed) images and integer labels of both splits.

    Attributes:
        x_train: images, NHWC, usually uint8.
        labels_train: integer labels ``(N,)``.
        x_test: test images.
        labels_test: test labels.
        n_classes: number of classes.
        source: where they were read from.
    """

    x_train: np.ndarray
    labels_train: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    n_classes: int
    source: str


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the MNIST format), gzipped (``.gz``) or not.

    Layout: a 4-byte magic number (two zero bytes, a type code, the number of
    dimensions), one big-endian uint32 per dimension, then the data.

    Args:
        path: the file.

    Returns:
        The array, in native byte order (uint8 for MNIST).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a well-formed IDX file.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            raw = f.read()
    except gzip.BadGzipFile as e:
        raise ValueError(f'{path} is not a gzip file ({e}); an uncompressed IDX '
                         'file must not end in .gz.') from e
    except (EOFError, zlib.error) as e:
        raise ValueError(f'{path} is a damaged gzip file ({e}); download it '
                         'again (a copy cut short?).') from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f'{path} is not an IDX file (bad magic number '
                         f'{raw[:4].hex() or "<empty>"}).')
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f'{path}: truncated IDX header.')
    shape = tuple(int(d) for d in np.frombuffer(raw, '>u4', ndim, 4))
    dtype = _IDX_DTYPES[raw[2]]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f'{path}: IDX header says shape {shape} ({expected} bytes) '
                         f'but the file holds {len(raw) - header} bytes of data.')
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder('='))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``).

    The inverse of :func:`read_idx`; used by tests and to export subsets.

    Args:
        path: the file to write.
        array: the data; its dtype must be one the IDX format has.
    """
    codes = {v.newbyteorder('='): k for k, v in _IDX_DTYPES.items()}
    array = np.asarray(array)
    code = codes.get(array.dtype.newbyteorder('='))
    if code is None:
        raise ValueError(f'IDX has no type for dtype {array.dtype}.')
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, '>u4').tobytes()
    body = array.astype(_IDX_DTYPES[code]).tobytes()
    path = os.fspath(path)
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(header + body)


def read_cifar_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads a CIFAR ``.npz`` file: ``x`` uint8 NHWC images and ``y`` labels.

    Args:
        path: the file.

    Returns:
        ``(x, labels)`` with ``x`` of shape (N, H, W, C) and ``labels`` int64 (N,).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the keys or shapes are not as described.
    """
    try:
        archive = np.load(os.fspath(path), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f'{path} is not a readable .npz archive ({type(e).__name__}'
                         f'); a CIFAR .npz holds arrays x (uint8, N x H x W x C) '
                         'and y (labels), as numpy.savez writes them.') from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f'{path} holds one array, not an .npz archive of x '
                         '(uint8, N x H x W x C) and y (labels).')
    with archive as f:
        missing = {'x', 'y'} - set(f.files)
        if missing:
            raise ValueError(f'{path} lacks array(s) {sorted(missing)}; a CIFAR .npz '
                             f'needs x (uint8, N x H x W x C) and y (labels); it has '
                             f'{f.files}.')
        x, y = f['x'], f['y']
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f'{path}: x must be NHWC images (N, H, W, C) with C = 1 or '
                         f'3, got shape {x.shape}.')
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f'{path}: {len(x)} images but {len(y)} labels.')
    return x, y.astype(np.int64)


def read_cifar_pickle(path: str | os.PathLike,
                      label_key: bytes = b'labels') -> tuple[np.ndarray, np.ndarray]:
    """Reads one batch of the official CIFAR python version (a pickle).

    Only open files from a source you trust: they are Python pickles.

    Args:
        path: e.g. ``cifar-10-batches-py/data_batch_1``.
        label_key: ``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` (CIFAR-100).

    Returns:
        ``(x, labels)``, x uint8 NHWC (N, 32, 32, 3).
    """
    with open(path, 'rb') as f:
        batch = pickle.load(f, encoding='bytes')
    data = np.asarray(batch[b'data'], np.uint8)
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch[label_key], np.int64)


def _idx_path(folder: str, stem: str) -> str | None:
    for candidate in (f'{stem}.gz', stem, f'{stem}.idx.gz'):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _read_mnist_like(folder: str, name: str) -> tuple[RawSplits | None, str]:
    paths = {key: _idx_path(folder, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        return None, 'no ' + ', '.join(f'{m}[.gz]' for m in missing)
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for split in ('train', 'test'):
        images, labels = arrays[f'{split}_images'], arrays[f'{split}_labels']
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f'{name} IDX files in {folder}: {split} images have shape '
                             f'{images.shape} and labels {labels.shape}; expected '
                             '(N, 28, 28) and (N,).')
    return RawSplits(arrays['train_images'][..., None],
                     arrays['train_labels'].astype(np.int64),
                     arrays['test_images'][..., None],
                     arrays['test_labels'].astype(np.int64),
                     10, f'local:{folder}'), ''


def _npz_role(filename: str, name: str) -> str | None:
    """'train' / 'test' for npz files of dataset ``name``, else None."""
    stem, ext = os.path.splitext(filename)
    if ext != '.npz':
        return None
    tokens = re.split(r'[_\-.]', stem.lower())
    generic = tokens[0].startswith(('train', 'test'))
    if not (generic or tokens[0] == name):
        return None
    roles = {t[:5] if t.startswith('train') else t[:4] for t in tokens
             if t.startswith(('train', 'test'))}
    return roles.pop() if len(roles) == 1 else None


def _read_cifar_like(folder: str, name: str,
                     n_classes: int) -> tuple[RawSplits | None, str]:
    pickled = _PICKLE_LAYOUTS[name]
    pickle_dir = os.path.join(folder, pickled[0])
    if os.path.isdir(pickle_dir):
        train_paths = [os.path.join(pickle_dir, f) for f in pickled[1]]
        test_path = os.path.join(pickle_dir, pickled[2])
        if all(os.path.isfile(p) for p in train_paths + [test_path]):
            parts = [read_cifar_pickle(p, pickled[3]) for p in train_paths]
            x_test, y_test = read_cifar_pickle(test_path, pickled[3])
            return RawSplits(np.concatenate([p[0] for p in parts]),
                             np.concatenate([p[1] for p in parts]), x_test, y_test,
                             n_classes, f'local:{pickle_dir}'), ''
    found = {'train': [], 'test': []}
    for filename in sorted(os.listdir(folder)):
        role = _npz_role(filename, name)
        if role:
            found[role].append(filename)
    if not found['train'] or not found['test']:
        return None, f'no {name}*train*.npz and *test*.npz pair'
    for role, files in found.items():
        if len(files) > 1:
            raise ValueError(
                f'{folder} holds several {role} files for {name}: {files}. Keep one '
                f'{role} file per directory, or point dataset.data_dir at a '
                'directory with exactly one *train*.npz and one *test*.npz.')
    x_train, y_train = read_cifar_npz(os.path.join(folder, found['train'][0]))
    x_test, y_test = read_cifar_npz(os.path.join(folder, found['test'][0]))
    for labels, file in ((y_train, found['train'][0]), (y_test, found['test'][0])):
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f'{os.path.join(folder, file)}: labels span '
                             f'[{labels.min()}, {labels.max()}], not the {n_classes} '
                             f'classes of {name}; is it the right dataset?')
    return RawSplits(x_train, y_train, x_test, y_test, n_classes,
                     f'local:{folder}'), ''


_READERS = {
    'mnist': lambda folder: _read_mnist_like(folder, 'mnist'),
    'fashion_mnist': lambda folder: _read_mnist_like(folder, 'fashion_mnist'),
    'cifar10': lambda folder: _read_cifar_like(folder, 'cifar10', 10),
    'cifar100': lambda folder: _read_cifar_like(folder, 'cifar100', 100),
}


def find_local(name: str, root: str) -> tuple[RawSplits | None, list[str]]:
    """Looks for local files of dataset ``name`` under ``root``.

    ``root`` itself and the conventional sub-folders (``SUBDIRS[name]``, e.g.
    ``root/mnist``) are searched in order; the first complete set wins.

    Args:
        name: 'mnist', 'fashion_mnist', 'cifar10' or 'cifar100'.
        root: a directory.

    Returns:
        ``(splits, [])`` when found, else ``(None, reasons)`` with one line per
        folder searched, saying what was missing.

    Raises:
        ValueError: if files are present but malformed or ambiguous.
    """
    if name not in _READERS:
        raise ValueError(f'No local reader for {name!r}; known: {sorted(_READERS)}.')
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        return None, [f'{root}: directory does not exist']
    reasons = []
    for sub in SUBDIRS[name]:
        folder = os.path.join(root, sub) if sub else root
        if sub and not os.path.isdir(folder):
            continue
        splits, reason = _READERS[name](folder)
        if splits is not None:
            return splits, []
        reasons.append(f'{folder}: {reason}')
    return None, reasons
