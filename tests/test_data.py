"""Tests for ntkexp.data: loaders, preprocessing, cache and the dataset configs."""

import gzip
import inspect
import json
import os
import pathlib
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import yaml

from ntkexp import data as D
from ntkexp.data import preprocess
from ntkexp.data import tfds_source

REPO = pathlib.Path(__file__).resolve().parents[1]
CONF = REPO / 'conf'
SHARED = REPO.parent / 'shared' / 'data'
DATASET_CONFIGS = sorted(p.stem for p in (CONF / 'dataset').glob('*.yaml'))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No user data dirs leak in; tfds's default dir is an empty temp dir."""
    monkeypatch.delenv('NTKEXP_DATA', raising=False)
    monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds_default'))


def _labels(n, k=10):
    return np.arange(n) % k


def write_mnist(folder, n_train=60, n_test=30, seed=0):
    """Tiny MNIST-format IDX.gz files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        'train-images-idx3-ubyte': rng.integers(0, 256, (n_train, 28, 28), np.uint8),
        'train-labels-idx1-ubyte': _labels(n_train).astype(np.uint8),
        't10k-images-idx3-ubyte': rng.integers(0, 256, (n_test, 28, 28), np.uint8),
        't10k-labels-idx1-ubyte': _labels(n_test).astype(np.uint8),
    }
    for stem, array in arrays.items():
        D.write_idx(folder / f'{stem}.gz', array)
    return arrays


def write_cifar_npz(folder, prefix='cifar10', n_train=40, n_test=20, k=10, seed=0):
    rng = np.random.default_rng(seed)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (('train', n_train), ('test', n_test)):
        x = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
        y = _labels(n, k).astype(np.uint8)
        np.savez(folder / f'{prefix}_{split}_small.npz', x=x, y=y)
        out[split] = (x, y)
    return out


# ----------------------------------------------------------------- local readers


def test_idx_roundtrip_gzip_and_plain(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), np.uint8)
    D.write_idx(tmp_path / 'a.gz', images)
    D.write_idx(tmp_path / 'a', images)
    for path in ('a.gz', 'a'):
        out = D.read_idx(tmp_path / path)
        assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
        np.testing.assert_array_equal(out, images)
    with gzip.open(tmp_path / 'a.gz', 'rb') as f:  # the real header layout
        head = f.read(16)
    assert head[:4] == bytes([0, 0, 8, 3])
    assert np.frombuffer(head[4:], '>u4').tolist() == [5, 28, 28]


def test_idx_rejects_malformed_files(tmp_path):
    (tmp_path / 'bad').write_bytes(b'\x01\x02\x03\x04rest')
    with pytest.raises(ValueError, match='not an IDX file'):
        D.read_idx(tmp_path / 'bad')
    D.write_idx(tmp_path / 'short', np.zeros((4, 3), np.uint8))
    (tmp_path / 'short').write_bytes((tmp_path / 'short').read_bytes()[:-2])
    with pytest.raises(ValueError, match='holds 10 bytes'):
        D.read_idx(tmp_path / 'short')
    # A gzip file cut short: named, with the fix.
    D.write_idx(tmp_path / 'cut.gz', np.arange(4000, dtype=np.uint8).reshape(40, 100))
    (tmp_path / 'cut.gz').write_bytes((tmp_path / 'cut.gz').read_bytes()[:-30])
    with pytest.raises(ValueError, match=r'cut\.gz is a damaged gzip file.*download'):
        D.read_idx(tmp_path / 'cut.gz')


def test_cifar_npz_rejects_damaged_files_naming_them(tmp_path):
    (tmp_path / 'junk.npz').write_bytes(b'not a zip archive at all' * 10)
    with pytest.raises(ValueError, match=r'junk\.npz is not a readable \.npz'):
        D.read_cifar_npz(tmp_path / 'junk.npz')
    np.save(tmp_path / 'one.npy', np.zeros(3))
    (tmp_path / 'one.npy').rename(tmp_path / 'one.npz')
    with pytest.raises(ValueError, match=r'one\.npz holds one array'):
        D.read_cifar_npz(tmp_path / 'one.npz')
    with pytest.raises(FileNotFoundError):
        D.read_cifar_npz(tmp_path / 'missing.npz')


def test_mnist_from_local_idx(tmp_path):
    written = write_mnist(tmp_path / 'mnist')
    for data_dir in (tmp_path, tmp_path / 'mnist'):  # root or its mnist/ sub-folder
        data = D.mnist(data_dir=str(data_dir), n_train=20, n_test=10, cache_dir=None)
        assert data.source == f'local:{tmp_path / "mnist"}'
        assert data.x_train.shape == (20, 28, 28, 1) and data.x_train.dtype == np.float32
        assert data.x_test.shape == (10, 28, 28, 1)
        assert data.y_train.shape == (20, 10) and data.task == 'classification'
        assert np.bincount(data.labels_train).tolist() == [2] * 10
        np.testing.assert_array_equal(data.y_train.argmax(1), data.labels_train)
        # Each returned image is one of the written ones, scaled to [0, 1], with its label.
        flat = written['train-images-idx3-ubyte'].reshape(60, -1).astype(np.float32) / 255
        for x, label in zip(data.x_train.reshape(20, -1), data.labels_train):
            match = np.flatnonzero(np.all(np.isclose(flat, x), axis=1))
            assert len(match) == 1
            assert written['train-labels-idx1-ubyte'][match[0]] == label


def test_cifar_from_local_npz_and_flatten(tmp_path):
    written = write_cifar_npz(tmp_path / 'cifar10')
    data = D.cifar10(data_dir=str(tmp_path), flatten=True, dtype='float64',
                     cache_dir=None)
    assert data.x_train.shape == (40, 32 * 32 * 3) and data.x_train.dtype == np.float64
    np.testing.assert_allclose(data.x_train, written['train'][0].reshape(40, -1) / 255)
    np.testing.assert_array_equal(data.labels_test, written['test'][1])
    x, y = D.read_cifar_npz(tmp_path / 'cifar10' / 'cifar10_train_small.npz')
    assert x.shape == (40, 32, 32, 3) and y.dtype == np.int64


def test_classes_keep_and_relabel_the_listed_classes(tmp_path):
    written = write_cifar_npz(tmp_path / 'cifar10', n_train=60, n_test=30)
    data = D.cifar10(data_dir=str(tmp_path), classes=[7, 2], n_train=8, flatten=True,
                     targets='onehot_centered', cache_dir=None)
    assert data.n_classes == 2 and data.y_train.shape == (8, 2)
    assert np.bincount(data.labels_train).tolist() == [4, 4]  # balanced over the two
    np.testing.assert_allclose(data.y_train.sum(1), 0.0, atol=1e-6)
    x_raw, y_raw = written['train']
    flat = x_raw.reshape(len(x_raw), -1) / 255
    for x, label in zip(data.x_train, data.labels_train):
        match = np.flatnonzero(np.all(np.isclose(flat, x), axis=1))
        assert len(match) == 1 and y_raw[match[0]] == [7, 2][label]  # 7 -> 0, 2 -> 1
    # The whole test split of those classes, in order, relabelled.
    x_test, y_test = written['test']
    keep = np.isin(y_test, [7, 2])
    np.testing.assert_allclose(data.x_test, x_test[keep].reshape(keep.sum(), -1) / 255,
                               rtol=1e-6)
    np.testing.assert_array_equal(data.labels_test, np.where(y_test[keep] == 7, 0, 1))


def test_validation_split_comes_from_the_train_pool_outside_n_train(tmp_path):
    """``n_valid``: seeded, class-balanced, disjoint from the training subset,
    which (with the test split) is the one drawn without it; preprocessed
    with the training statistics; cached with its arrays; too large a split
    names both sizes and the pool."""
    plain = D.digits(n_train=100, standardize='per_feature', zca=0.1)
    data = D.digits(n_train=100, n_valid=50, standardize='per_feature', zca=0.1,
                    cache_dir=str(tmp_path))
    assert plain.n_valid == 0 and plain.x_valid is None
    np.testing.assert_array_equal(data.x_train, plain.x_train)
    np.testing.assert_array_equal(data.x_test, plain.x_test)
    assert data.n_valid == 50 and data.x_valid.shape == (50, 8, 8, 1)
    assert np.bincount(data.labels_valid).tolist() == [5] * 10
    np.testing.assert_array_equal(data.y_valid.argmax(1), data.labels_valid)
    raw = D.digits(n_train=100, n_valid=50, flatten=True, dtype='float64')
    train = {row.tobytes() for row in raw.x_train}
    assert not any(row.tobytes() in train for row in raw.x_valid)
    # The training subset's statistics, applied to the validation images.
    _, want = preprocess.standardize(raw.x_train, raw.x_valid, 'per_feature')
    got = D.digits(n_train=100, n_valid=50, flatten=True, dtype='float64',
                   standardize='per_feature')
    np.testing.assert_allclose(got.x_valid, want, rtol=1e-12, atol=1e-12)
    cached = D.digits(n_train=100, n_valid=50, standardize='per_feature', zca=0.1,
                      cache_dir=str(tmp_path))
    assert cached.source.startswith('cache:')
    np.testing.assert_array_equal(cached.x_valid, data.x_valid)
    np.testing.assert_array_equal(cached.labels_valid, data.labels_valid)
    other_seed = D.digits(n_train=100, n_valid=50, seed=1)
    assert not np.array_equal(other_seed.x_valid, raw.x_valid.reshape(-1, 8, 8, 1))
    with pytest.raises(ValueError, match=r'only 37 examples .* n_train=1400'):
        D.digits(n_train=1400, n_valid=50)
    with pytest.raises(ValueError, match=r'n_valid must be an integer >= 0'):
        D.digits(n_train=10, n_valid=-1)
    write_mnist(tmp_path / 'mnist', n_train=60)
    mnist = D.mnist(data_dir=str(tmp_path / 'mnist'), n_train=20, n_valid=30, n_test=10)
    assert (mnist.n_train, mnist.n_valid, mnist.n_test) == (20, 30, 10)
    assert np.bincount(mnist.labels_valid, minlength=10).tolist() == [3] * 10


def test_classes_digits_cached_apart_from_all_classes(tmp_path):
    both = D.digits(classes=[3, 8], n_train=None, cache_dir=str(tmp_path))
    full = D.digits(n_train=None, cache_dir=str(tmp_path))
    assert both.n_classes == 2 and full.n_classes == 10
    assert len(both.x_train) == np.isin(full.labels_train, [3, 8]).sum()
    np.testing.assert_array_equal(both.x_train, full.x_train[np.isin(full.labels_train,
                                                                      [3, 8])])
    again = D.digits(classes=[3, 8], n_train=None, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again.labels_train, both.labels_train)


@pytest.mark.parametrize('classes, match', [
    ([0, 10], r'\[10\] not a class label; the labels are the integers 0 .. 9'),
    ([1, 1], r'at least two distinct labels'),
    ([4], r'at least two distinct labels'),
    (3, r'classes must be a list of class labels such as \[0, 1\]'),
    ([0.5, 1], r'not a class label'),
])
def test_bad_classes_raise_one_clear_error(classes, match):
    with pytest.raises(ValueError, match=match):
        D.digits(classes=classes)


def test_cifar100_does_not_take_cifar10_files(tmp_path):
    write_cifar_npz(tmp_path, prefix='cifar10')
    with pytest.raises(FileNotFoundError, match='cifar100'):
        D.cifar100(data_dir=str(tmp_path), download=False)
    write_cifar_npz(tmp_path, prefix='cifar100', k=100, n_train=200, n_test=100)
    data = D.cifar100(data_dir=str(tmp_path), n_train=100, download=False)
    assert data.n_classes == 100 and data.y_train.shape == (100, 100)
    assert np.bincount(data.labels_train, minlength=100).tolist() == [1] * 100


def test_cifar_official_pickles(tmp_path):
    folder = tmp_path / 'cifar-10-batches-py'
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        rows = rng.integers(0, 256, (4, 3072), np.uint8)
        batches[name] = rows
        with open(folder / name, 'wb') as f:
            pickle.dump({b'data': rows, b'labels': [0, 1, 2, 3]}, f)
    raw = D.load_raw('cifar10', str(tmp_path))
    assert raw.x_train.shape == (20, 32, 32, 3) and raw.x_test.shape == (4, 32, 32, 3)
    # Row layout is 1024 red, 1024 green, 1024 blue values (row-major 32x32 each).
    first = batches['data_batch_1'][0]
    assert raw.x_train[0, 0, 1, 0] == first[1] and raw.x_train[0, 0, 0, 2] == first[2048]


def test_env_var_is_used_when_no_data_dir(tmp_path, monkeypatch):
    write_mnist(tmp_path / 'mnist')
    monkeypatch.setenv('NTKEXP_DATA', str(tmp_path))
    data = D.mnist(n_train=10, n_test=10, download=False)
    assert data.source == f'local:{tmp_path / "mnist"}'


def test_missing_data_dir_is_named_before_another_copy_is_used(tmp_path,
                                                              monkeypatch, caplog):
    write_mnist(tmp_path / 'mnist')
    monkeypatch.setenv('NTKEXP_DATA', str(tmp_path))
    typo = tmp_path / 'mnsit'
    with caplog.at_level('WARNING', logger='ntkexp.data.builders'):
        data = D.mnist(data_dir=str(typo), n_train=10, n_test=10, download=False)
    assert data.source == f'local:{tmp_path / "mnist"}'
    assert f'dataset.data_dir={typo}: no such directory' in caplog.text


def test_missing_dataset_error_lists_paths_and_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, 'network_available', lambda *a: False)
    missing = tmp_path / 'nowhere'
    monkeypatch.setenv('NTKEXP_DATA', str(tmp_path / 'env_root'))
    (tmp_path / 'env_root').mkdir()
    with pytest.raises(FileNotFoundError) as info:
        D.mnist(data_dir=str(missing))
    message = str(info.value)
    assert str(missing) in message and 'does not exist' in message
    assert str(tmp_path / 'env_root') in message  # $NTKEXP_DATA tried too
    assert 'train-images-idx3-ubyte' in message
    assert str(tmp_path / 'tfds_default') in message  # tfds's default directory
    assert 'no network' in message
    assert 'dataset.data_dir=' in message and 'NTKEXP_DATA' in message
    with pytest.raises(FileNotFoundError, match=r'download=false'):
        D.cifar10(data_dir=str(missing), download=False)


def test_tfds_look_up_leaves_no_temporary_directory(tmp_path, monkeypatch):
    """tfds makes a mkdtemp directory for an unprepared dataset and keeps it;
    the look-up runs inside a scratch directory that is removed after."""
    pytest.importorskip('tensorflow_datasets')
    monkeypatch.setattr(tfds_source, 'network_available', lambda *a: False)
    temp_root = tmp_path / 'tmp'
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(temp_root))
    empty = tmp_path / 'tfds_empty'
    empty.mkdir()
    splits, reason = tfds_source.load_prepared('mnist', str(empty))
    assert splits is None and 'not prepared' in reason
    splits, reason = tfds_source.download('mnist', str(empty))
    assert splits is None and 'no network' in reason
    assert sorted(temp_root.iterdir()) == []
    assert tempfile.tempdir == str(temp_root)  # restored
    with tfds_source.tfds_scratch_dir() as scratch:  # what tfds did, by hand
        assert tempfile.gettempdir() == scratch
        leak = tempfile.mkdtemp('tfds')
    assert not os.path.exists(leak) and not os.path.exists(scratch)


def test_real_mnist_and_cifar_from_shared_data():
    if not (SHARED / 'mnist').is_dir():
        pytest.skip('no ../shared/data (optional local copies)')
    raw = D.load_raw('mnist', str(SHARED))
    assert raw.x_train.shape == (60000, 28, 28, 1) and raw.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.labels_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(raw.labels_test).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(raw.x_train.mean() / 255 - 0.1307) < 1e-4  # the well-known MNIST mean
    data = D.mnist(data_dir=str(SHARED / 'mnist'), n_train=500, n_test=100)
    assert data.x_train.shape == (500, 28, 28, 1)
    assert np.bincount(data.labels_train).tolist() == [50] * 10
    cifar = D.cifar10(data_dir=str(SHARED), n_train=100, n_test=100, flatten=True)
    assert cifar.x_train.shape == (100, 3072) and cifar.n_classes == 10


# ----------------------------------------------------------------- tfds (mocked)


def test_tfds_data_source_under_mock_data():
    tfds = pytest.importorskip('tensorflow_datasets')
    with tfds.testing.mock_data(num_examples=30):
        data = D.mnist(n_train=10, n_test=5, download=False)
        assert data.source.startswith('tfds:')
        assert data.x_train.shape == (10, 28, 28, 1) and data.y_train.shape == (10, 10)
        assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
        np.testing.assert_array_equal(data.y_train.argmax(1), data.labels_train)
        cifar = D.cifar100(n_train=None, flatten=True, targets='onehot_centered',
                           download=False)
        assert cifar.x_train.shape == (30, 3072) and cifar.n_classes == 100
        np.testing.assert_allclose(cifar.y_train.sum(1), 0.0, atol=1e-5)


@pytest.mark.slow  # imports TensorFlow (10-20 s)
def test_tfds_tensorflow_reader_under_mock_data():
    """The tfds.load path for TFRecord copies (only where TensorFlow is installed)."""
    if not tfds_source.tensorflow_available():
        pytest.skip('TensorFlow not installed')
    tfds = pytest.importorskip('tensorflow_datasets')
    with tfds.testing.mock_data(num_examples=7):
        raw = tfds_source.read_with_tensorflow('cifar10', None)
    assert raw.x_train.shape == (7, 32, 32, 3) and raw.x_train.dtype == np.uint8
    assert raw.labels_test.shape == (7,) and raw.n_classes == 10


def test_tfds_path_without_tensorflow_and_no_tf_import(tmp_path):
    """In a process where TensorFlow cannot be imported (the GPU machine): importing
    ntkexp.data loads neither TF nor tfds, and tfds.data_source still reads data."""
    script = r'''
import importlib.machinery as M, json, sys
class Hide(M.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split('.')[0] == 'tensorflow':
            return None
        return M.PathFinder.find_spec(name, path, target)
sys.meta_path[sys.meta_path.index(M.PathFinder)] = Hide
import ntkexp.data as D
out = {'tf_after_import': 'tensorflow' in sys.modules,
       'tfds_after_import': 'tensorflow_datasets' in sys.modules,
       'digits': list(D.digits(n_train=20).x_train.shape)}
import tensorflow_datasets as tfds
with tfds.testing.mock_data(num_examples=12):
    data = D.fashion_mnist(n_train=6, n_test=4, download=False)
out['tfds_shape'] = list(data.x_train.shape)
out['source'] = data.source
out['tf_loaded'] = sys.modules.get('tensorflow') is not None
print('RESULT' + json.dumps(out))
'''
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS='cpu')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[0][len('RESULT'):])
    assert out == {'tf_after_import': False, 'tfds_after_import': False,
                   'digits': [20, 8, 8, 1], 'tfds_shape': [6, 28, 28, 1],
                   'source': out['source'], 'tf_loaded': False}
    assert out['source'].startswith('tfds:')


def test_tfrecord_copy_without_tensorflow_says_so(monkeypatch):
    monkeypatch.setattr(tfds_source, 'read_with_data_source',
                        lambda *a, **k: (_ for _ in ()).throw(NotImplementedError('x')))
    monkeypatch.setattr(tfds_source, '_prepared_format', lambda *a: 'tfrecord')
    monkeypatch.setattr(tfds_source, 'tensorflow_available', lambda: False)
    splits, reason = tfds_source.load_prepared('mnist', '/some/dir')
    assert splits is None
    assert 'tfrecord' in reason and 'needs TensorFlow' in reason and '/some/dir' in reason


# ------------------------------------------------------------------ preprocessing


def test_balanced_subsets_seeded_identical_and_nested():
    labels = np.repeat(np.arange(10), 50)[np.random.default_rng(1).permutation(500)]
    a = preprocess.balanced_subset(labels, 95, seed=3)
    b = preprocess.balanced_subset(labels, 95, seed=3)
    np.testing.assert_array_equal(a, b)
    counts = np.bincount(labels[a], minlength=10)
    assert counts.sum() == 95 and set(counts.tolist()) == {9, 10}
    assert not np.array_equal(a, preprocess.balanced_subset(labels, 95, seed=4))
    small = preprocess.balanced_subset(labels, 40, seed=3)
    assert set(small) <= set(a)  # nested for one seed
    # A class short of examples passes its quota on; the total is exact.
    skewed = np.array([0] * 3 + [1] * 50)
    idx = preprocess.balanced_subset(skewed, 20, seed=0)
    assert np.bincount(skewed[idx]).tolist() == [3, 17]


def test_dataset_subsets_balanced_and_reproducible():
    a = D.digits(n_train=100, n_test=50, seed=7)
    b = D.digits(n_train=100, n_test=50, seed=7)
    c = D.digits(n_train=100, n_test=50, seed=8)
    assert np.bincount(a.labels_train).tolist() == [10] * 10
    assert np.bincount(a.labels_test).tolist() == [5] * 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    full = D.digits(n_train=None, n_test=None)
    assert full.x_train.shape == (1437, 8, 8, 1) and full.x_test.shape == (360, 8, 8, 1)
    # The train and test pools do not overlap.
    train = {x.tobytes() for x in full.x_train}
    assert sum(x.tobytes() in train for x in full.x_test) < 5  # digits has a few duplicates


@pytest.mark.parametrize('kwargs, match', [
    (dict(n_train=2000), r'dataset\.n_train=2000 is larger than the 1437 examples available; '
                         r'use dataset\.n_train<=1437'),
    (dict(n_test=-1), r'n_test must be >= 1 \(or null for all\), got -1'),
    (dict(n_train=0), r'n_train must be >= 1 \(or null for all\), got 0'),
    (dict(n_train=1.5), r'n_train must be a positive integer or null \(all\)'),
    (dict(targets='softmax'), r'targets must be one of'),
    (dict(standardize='global'), r'standardize must be one of'),
    (dict(zca=0.0), r'zca must be a positive'),
    (dict(dtype='float16'), r'dtype must be one of'),
])
def test_bad_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.digits(**kwargs)


def _cov(x):
    x = x.reshape(len(x), -1).astype(np.float64)
    x = x - x.mean(0)
    return x.T @ x / len(x)


def test_zca_whitens_as_regulariser_goes_to_zero():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    mixing = q * np.logspace(0, -1, 12)  # covariance eigenvalues 1 ... 1e-2
    x_train = rng.standard_normal((3000, 12)) @ mixing.T + 5.0
    x_test = rng.standard_normal((500, 12)) @ mixing.T + 5.0
    errors = []
    for strength in (1.0, 1e-2, 1e-4, 1e-8):
        w_train, w_test = preprocess.zca_whiten(x_train, x_test, strength)
        errors.append(np.abs(_cov(w_train) - np.eye(12)).max())
        assert abs(w_train.mean(0)).max() < 1e-8  # centred on the train mean
    assert errors == sorted(errors, reverse=True)
    assert errors[0] > 0.3 and errors[-1] < 1e-5
    # ZCA (not PCA): the whitened data stays aligned with the input coordinates,
    # W is symmetric, and the test split is whitened with the train transform.
    mean, w = preprocess.fit_zca(x_train, 1e-8)
    np.testing.assert_allclose(w, w.T, atol=1e-8)
    np.testing.assert_allclose(_cov(x_test @ w), np.eye(12), atol=0.15)


def test_zca_regulariser_is_relative_to_the_mean_eigenvalue():
    # Lee et al. 2020, Sec. on ZCA: W = U (L + s * mean(L))^(-1/2) U^T. Data
    # whose mean eigenvalue is far from 1 tell it from an absolute s.
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    eigvals = np.array([400.0, 100.0, 25.0, 9.0, 4.0, 1.0])
    x = rng.standard_normal((200, 6))
    x = (x - x.mean(0)) @ np.linalg.inv(np.linalg.cholesky(_cov(x))).T
    x = x @ (q * np.sqrt(eigvals)).T + 3.0  # covariance exactly q L q^T
    strength = 0.1
    mean, w = preprocess.fit_zca(x, strength)
    want = (q * (eigvals + strength * eigvals.mean()) ** -0.5) @ q.T
    np.testing.assert_allclose(mean, 3.0, rtol=1e-12)
    np.testing.assert_allclose(w, want, rtol=1e-10, atol=1e-13)
    # Relative, so scale-free: inputs scaled by c get W / c.
    _, w_scaled = preprocess.fit_zca(7.0 * x, strength)
    np.testing.assert_allclose(w_scaled, w / 7.0, rtol=1e-10, atol=1e-13)


def test_zca_on_images_keeps_shape_and_uses_train_statistics():
    data = D.digits(n_train=500, n_test=100, zca=1e-2, standardize='per_feature')
    assert data.x_train.shape == (500, 8, 8, 1)
    cov = _cov(data.x_train)
    active = np.diag(cov) > 1e-3  # digits has always-blank pixels
    eigs = np.linalg.eigvalsh(cov[np.ix_(active, active)])
    assert eigs.max() < 1.0 + 1e-4 and np.median(eigs) > 0.5  # close to white
    # Large regulariser ~ centring and a global rescale only.
    plain = D.digits(n_train=500, n_test=100, dtype='float64')
    soft = D.digits(n_train=500, n_test=100, zca=1e6, dtype='float64')
    centred = plain.x_train - plain.x_train.mean(0)
    ratio = soft.x_train[centred != 0] / centred[centred != 0]
    assert np.std(ratio) / np.mean(ratio) < 1e-4


def test_stats_from_train_split_uses_the_whole_training_pool():
    """``stats_from=train_split``: standardisation and ZCA statistics of the
    whole training pool (1437 digits), applied to the subset: equal to
    standardising / whitening the pool and then taking the subset's rows."""
    pool = D.digits(n_train=None, n_test=50, dtype='float64')
    sub = D.digits(n_train=100, n_test=50, dtype='float64')
    # The subset's rows in the pool (nested subsets: find each image).
    flat_pool = pool.x_train.reshape(len(pool.x_train), -1)
    index = {row.tobytes(): i for i, row in enumerate(flat_pool)}
    rows = [index[r.tobytes()] for r in sub.x_train.reshape(100, -1)]
    for options in (dict(standardize='per_channel'),
                    dict(standardize='per_feature', zca=0.1), dict(zca=1e-3)):
        whole = D.digits(n_train=None, n_test=50, dtype='float64', **options)
        split = D.digits(n_train=100, n_test=50, dtype='float64',
                         stats_from='train_split', **options)
        subset = D.digits(n_train=100, n_test=50, dtype='float64', **options)
        np.testing.assert_allclose(split.x_train, whole.x_train[rows], atol=1e-12)
        np.testing.assert_allclose(split.x_test, whole.x_test, atol=1e-12)
        assert np.abs(subset.x_train - split.x_train).max() > 1e-3
    with pytest.raises(ValueError, match=r"stats_from must be one of \('subset', "
                                          r"'train_split'\), got 'test'"):
        D.digits(stats_from='test')


def test_zca_fit_on_fewer_images_than_features_warns_with_the_norm_ratio(caplog):
    """Fit on 30 images of 64 features, ZCA scales the 34+ directions they
    do not span by 1/sqrt(eps): test images come out larger; the warning gives
    the measured ratio. Fit on the whole pool (1437 > 64): no warning."""
    with caplog.at_level('WARNING', logger='ntkexp.data.preprocess'):
        data = D.digits(n_train=30, n_test=100, zca=0.1, dtype='float64')
    norm = lambda x: np.linalg.norm(x.reshape(len(x), -1), axis=1).mean()
    ratio = norm(data.x_test) / norm(data.x_train)
    assert ratio > 1.2
    assert ('ZCA fit on 30 images of 64 features' in caplog.text
            and f'{ratio:.2f}x the norm of training images' in caplog.text
            and 'dataset.stats_from=train_split' in caplog.text)
    caplog.clear()
    with caplog.at_level('WARNING', logger='ntkexp.data.preprocess'):
        split = D.digits(n_train=30, n_test=100, zca=0.1, dtype='float64',
                         stats_from='train_split')
    assert 'ZCA fit on' not in caplog.text
    assert norm(split.x_test) / norm(split.x_train) < 1.1


def test_standardize_per_feature_and_per_channel():
    rng = np.random.default_rng(0)
    x_train = rng.normal([1.0, -2.0, 3.0], [0.5, 2.0, 4.0], (400, 4, 4, 3))
    x_test = rng.normal(0.0, 1.0, (50, 4, 4, 3))
    tr, te = preprocess.standardize(x_train, x_test, 'per_channel')
    np.testing.assert_allclose(tr.mean((0, 1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(tr.std((0, 1, 2)), 1, atol=1e-10)
    # Train statistics are applied to the test split.
    np.testing.assert_allclose(te, (x_test - x_train.mean((0, 1, 2))) / x_train.std((0, 1, 2)))
    tr, _ = preprocess.standardize(x_train, x_test, 'per_feature')
    np.testing.assert_allclose(tr.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(tr.std(0), 1, atol=1e-10)
    tr, _ = preprocess.standardize(x_train, x_test, 'per_image')
    np.testing.assert_allclose(tr.reshape(400, -1).std(1), 1, atol=1e-10)
    # Constant features (blank digit pixels) stay finite.
    data = D.digits(n_train=100, standardize='per_feature')
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()


def test_targets_onehot_centred_and_regression():
    onehot = D.digits(n_train=30, targets='onehot')
    centred = D.digits(n_train=30, targets='onehot_centered')
    np.testing.assert_allclose(centred.y_train, onehot.y_train - 0.1, atol=1e-7)
    np.testing.assert_allclose(np.unique(centred.y_train), [-0.1, 0.9], atol=1e-7)
    regression = D.digits(n_train=30, targets='regression')
    assert regression.task == 'regression' and regression.y_train.shape == (30, 1)
    np.testing.assert_array_equal(regression.y_train[:, 0], regression.labels_train)


# ------------------------------------------------------------------ generated data


def test_circle_inputs_targets_and_grid():
    data = D.circle(n_train=50, n_test=8, grid=True, target='x1*x2', dtype='float64')
    np.testing.assert_allclose(np.linalg.norm(data.x_train, axis=1), 1.0)
    np.testing.assert_allclose(data.y_train[:, 0], data.x_train[:, 0] * data.x_train[:, 1])
    angles = np.mod(np.arctan2(data.x_test[:, 1], data.x_test[:, 0]), 2 * np.pi)
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    assert data.task == 'regression' and data.labels_train is None and data.n_classes is None
    assert data.x_train.dtype == np.float64
    # Train and test streams are independent: more training points, same test set.
    a = D.circle(n_train=10, n_test=20, seed=1)
    b = D.circle(n_train=30, n_test=20, seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.x_train, b.x_train[:10])
    h = D.circle(n_train=5, n_test=5, target='harmonic_3', dtype='float64')
    g = np.arctan2(h.x_train[:, 1], h.x_train[:, 0])
    np.testing.assert_allclose(h.y_train[:, 0], np.sqrt(2) * np.cos(3 * g), atol=1e-12)


@pytest.mark.parametrize('d', [2, 3, 6])
def test_sphere_harmonics_are_orthonormal(d):
    data = D.sphere(d=d, n_train=40000, n_test=1, seed=0, dtype='float64',
                    target=['harmonic_1', 'harmonic_2', 'harmonic_3', 'x1*x2'])
    np.testing.assert_allclose(np.linalg.norm(data.x_train, axis=1), 1.0)
    gram = data.y_train[:, :3].T @ data.y_train[:, :3] / len(data.y_train)
    np.testing.assert_allclose(gram, np.eye(3), atol=0.04)
    # x1*x2 is a degree-2 harmonic, orthogonal to the zonal degree-1 and 3 ones.
    assert abs(np.mean(data.y_train[:, 3] * data.y_train[:, 0])) < 0.01


def test_gaussian_jacot_fig1_target_and_errors():
    data = D.gaussian(d=2, n_train=5000, n_test=10, target='x1*x2', dtype='float64')
    assert data.x_train.shape == (5000, 2) and data.y_train.shape == (5000, 1)
    np.testing.assert_allclose(data.x_train.std(0), 1.0, atol=0.05)
    np.testing.assert_allclose(data.y_train[:, 0], np.prod(data.x_train, axis=1))
    with pytest.raises(ValueError, match=r"Unknown target 'x1\*x3'.*harmonic_<k>"):
        D.gaussian(target='x1*x3')
    with pytest.raises(ValueError, match='dimension >= 2'):
        D.gaussian(d=1, target='x1*x2')
    with pytest.raises(ValueError, match='n_train must be a positive integer, got None'):
        D.sphere(n_train=None)
    with pytest.raises(ValueError, match='d must be >= 1, got 0'):
        D.gaussian(d=0)
    noisy = D.gaussian(n_train=2000, noise=0.5, dtype='float64')
    clean = D.gaussian(n_train=2000, dtype='float64')
    np.testing.assert_array_equal(noisy.x_train, clean.x_train)
    assert 0.45 < np.std(noisy.y_train - clean.y_train) < 0.55
    np.testing.assert_array_equal(noisy.y_test, clean.y_test)  # noise on train only


# ----------------------------------------------------------------------- cache


def test_cache_reuses_preprocessed_arrays(tmp_path):
    write_mnist(tmp_path / 'data' / 'mnist', n_train=100, n_test=20)
    cache_dir = tmp_path / 'cache'
    kwargs = dict(data_dir=str(tmp_path / 'data'), n_train=50, zca=0.1,
                  cache_dir=str(cache_dir), download=False)
    first = D.mnist(**kwargs)
    assert first.source.startswith('local:') and len(list(cache_dir.glob('*.npz'))) == 1
    for f in (tmp_path / 'data' / 'mnist').iterdir():  # the raw files are gone ...
        f.unlink()
    second = D.mnist(**kwargs)  # ... but the cached, whitened arrays are read back
    assert second.source.startswith('cache:')
    for field in ('x_train', 'y_train', 'x_test', 'y_test', 'labels_train', 'labels_test'):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert (second.n_classes, second.task, second.name) == (10, 'classification', 'mnist')
    with pytest.raises(FileNotFoundError):  # other options = another key = a rebuild
        D.mnist(**{**kwargs, 'zca': 0.2})
    regression = D.sphere(n_train=10, cache_dir=str(cache_dir))
    again = D.sphere(n_train=10, cache_dir=str(cache_dir))
    assert again.source.startswith('cache:') and again.labels_train is None
    np.testing.assert_array_equal(regression.y_train, again.y_train)


# ----------------------------------------------------------------------- configs


def test_configs_follow_the_contract():
    assert {'digits', 'circle', 'sphere', 'gaussian', 'mnist', 'fashion_mnist',
            'cifar10', 'cifar100'} <= set(DATASET_CONFIGS)
    for name in DATASET_CONFIGS:
        cfg = yaml.safe_load((CONF / 'dataset' / f'{name}.yaml').read_text())
        assert cfg['name'] == name
        module, function = cfg['_target_'].rsplit('.', 1)
        assert module == 'ntkexp.data'
        params = inspect.signature(getattr(D, function)).parameters
        unknown = set(cfg) - {'_target_'} - set(params)
        assert not unknown, f'{name}.yaml has keys {unknown} its function does not take'
        for key in ('n_train', 'n_test', 'seed', 'standardize', 'zca', 'dtype',
                    'cache_dir', 'flatten'):
            assert key in cfg, f'{name}.yaml lacks {key}'


def test_hydra_instantiate_every_dataset(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    write_mnist(tmp_path / 'data' / 'mnist')
    write_mnist(tmp_path / 'data' / 'fashion_mnist', seed=1)
    write_cifar_npz(tmp_path / 'data' / 'cifar10')
    write_cifar_npz(tmp_path / 'data' / 'cifar100', prefix='cifar100', k=100,
                    n_train=100, n_test=100)
    small = {'mnist': 20, 'fashion_mnist': 20, 'cifar10': 20, 'cifar100': 100}
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        for name in DATASET_CONFIGS:
            overrides = ['~model', '~experiment', f'dataset={name}',
                         f'paths.cache={tmp_path / "cache"}']
            if name in small:
                overrides += [f'dataset.data_dir={tmp_path / "data"}',
                              f'dataset.n_train={small[name]}']
            elif name == 'digits':
                overrides += ['dataset.n_train=100']
            cfg = compose(config_name='config', overrides=overrides)
            data = instantiate(cfg.dataset)
            assert isinstance(data, D.Dataset) and data.name == name
            assert data.x_train.dtype == np.float32 and data.y_train.ndim == 2
            if name in small or name == 'digits':
                assert data.x_train.ndim == 4 and data.task == 'classification'
                assert np.bincount(data.labels_train).min() == data.n_train // data.n_classes
            else:
                assert data.x_train.ndim == 2 and data.task == 'regression'
    # The image configs cache under paths.cache by default.
    assert len(list((tmp_path / 'cache' / 'data').glob('*.npz'))) == len(small)


def test_load_dataset_convenience():
    data = D.load_dataset('digits', n_train=20, flatten=True)
    assert data.x_train.shape == (20, 64)
    cfg = yaml.safe_load((CONF / 'dataset' / 'circle.yaml').read_text())
    data = D.load_dataset(cfg, n_train=3)
    assert data.name == 'circle' and data.x_train.shape == (3, 2)
    with pytest.raises(ValueError, match='Unknown dataset'):
        D.load_dataset('imagenet')


def test_dataset_validates_shapes():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match='must be 2-D'):
        D.Dataset('t', x, np.zeros(3), x, np.zeros((3, 1)))
    with pytest.raises(ValueError, match='3 inputs but 2 targets'):
        D.Dataset('t', x, np.zeros((2, 1)), x, np.zeros((3, 1)))
