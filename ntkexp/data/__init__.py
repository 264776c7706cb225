"""Datasets and preprocessing (``conf/dataset/*.yaml`` instantiate these).

``hydra.utils.instantiate(cfg.dataset)`` returns a :class:`Dataset` of numpy
arrays. Built in, no network: :func:`digits` (scikit-learn's 8x8 digits, the
default), :func:`circle` (Jacot et al. 2018), :func:`sphere`, :func:`gaussian`.
Real image sets: :func:`mnist`, :func:`fashion_mnist`, :func:`cifar10`,
:func:`cifar100`, from local files (``data_dir`` / ``$NTKEXP_DATA``) or
tensorflow-datasets. Preprocessing (balanced subsets, standardisation, ZCA
whitening and centred one-hot targets as in Lee et al. 2020) lives in
:mod:`ntkexp.data.preprocess`; the on-disk cache in :mod:`ntkexp.data.cache`.

Nothing here imports TensorFlow or tensorflow-datasets until a real image set is
read through tfds.
"""

from ntkexp.data.builders import DATASETS
from ntkexp.data.builders import cifar10
from ntkexp.data.builders import cifar100
from ntkexp.data.builders import circle
from ntkexp.data.builders import digits
from ntkexp.data.builders import fashion_mnist
from ntkexp.data.builders import gaussian
from ntkexp.data.builders import load_dataset
from ntkexp.data.builders import load_raw
from ntkexp.data.builders import mnist
from ntkexp.data.builders import sphere
from ntkexp.data.dataset import Dataset
from ntkexp.data.readers import read_cifar_npz
from ntkexp.data.readers import read_idx
from ntkexp.data.readers import write_idx

__all__ = [
    'DATASETS', 'Dataset', 'cifar10', 'cifar100', 'circle', 'digits', 'fashion_mnist',
    'gaussian', 'load_dataset', 'load_raw', 'mnist', 'read_cifar_npz', 'read_idx',
    'sphere', 'write_idx',
]
