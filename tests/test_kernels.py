"""The block engine equals neural-tangents' kernel_fn, respects its budget, resumes."""

import os

import jax
import numpy as np
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
from neural_tangents import stax

from ntkexp import kernels


def _conv_gap():
    return stax.serial(stax.Conv(8, (3, 3), padding='SAME'), stax.Relu(),
                       stax.Conv(8, (3, 3), padding='SAME'), stax.Relu(),
                       stax.GlobalAvgPool(), stax.Dense(1))


@pytest.fixture(scope='module')
def conv_data():
    rng = np.random.RandomState(0)
    return rng.randn(11, 6, 6, 2), rng.randn(5, 6, 6, 2)


def test_blocks_equal_direct_kernel_float64(conv_data, tmp_path):
    x1, x2 = conv_data
    _, _, kernel_fn = _conv_gap()
    with jax.enable_x64(True):
        engine = kernels.KernelEngine(kernel_fn, 'conv', block_size=4,
                                      cache_dir=tmp_path, progress=False)
        k11 = engine(x1)
        k21 = engine(x2, x1)
        ref11 = kernel_fn(x1, None, ('nngp', 'ntk'))
        ref21 = kernel_fn(x2, x1, ('nngp', 'ntk'))
    for get in ('nngp', 'ntk'):
        # 1e-8, not 1e-15: the ReLU arc-cosine step amplifies rounding near
        # correlation 1 (sqrt(1 - c^2)), and neural-tangents' k(x, None)
        # evaluates the diagonal differently from the blocks' k(x_i, x_j).
        np.testing.assert_allclose(k11[get], getattr(ref11, get), rtol=1e-8)
        np.testing.assert_allclose(k21[get], getattr(ref21, get), rtol=1e-10)
        assert k11[get].dtype == np.float64
        # Assembled from the upper triangle: exactly symmetric.
        assert np.array_equal(k11[get], k11[get].T)


def test_only_upper_triangle_is_computed(conv_data):
    x1, _ = conv_data
    _, _, kernel_fn = _conv_gap()
    engine = kernels.KernelEngine(kernel_fn, 'conv', get=('ntk',), block_size=3,
                                  cache_dir=None, progress=False)
    engine(x1.astype(np.float32))
    rows = -(-len(x1) // 3)
    assert engine.computed_blocks == rows * (rows + 1) // 2


def test_cached_kernel_is_not_recomputed_and_resumes_bit_for_bit(conv_data,
                                                                 tmp_path):
    x1, _ = conv_data
    x1 = x1.astype(np.float32)
    _, _, kernel_fn = _conv_gap()
    make = lambda: kernels.KernelEngine(kernel_fn, 'conv', block_size=3,
                                        cache_dir=tmp_path, progress=False)
    full = make()(x1)
    plan = make().plan(x1, None)
    block_files = sorted(plan[1].root.glob('*.npz'))
    assert len(block_files) == len(plan[0].blocks())
    again = make()
    assert np.array_equal(again(x1)['ntk'], full['ntk'])
    assert again.computed_blocks == 0
    # Simulate a kill: two blocks lost (and a stale temporary file left).
    for path in block_files[1:3]:
        os.remove(path)
    (plan[1].root / '.0_0.123.tmp.npz').write_bytes(b'partial')
    resumed = make()
    out = resumed(x1)
    assert resumed.computed_blocks == 2
    for get in ('nngp', 'ntk'):
        assert np.array_equal(out[get], full[get])


def test_cache_key_depends_on_model_data_and_precision(conv_data):
    x1, _ = conv_data
    key = kernels.kernel_key('a', x1, None, ('ntk',), x1.dtype)
    assert key == kernels.kernel_key('a', x1.copy(), None, ('ntk',), x1.dtype)
    assert key != kernels.kernel_key('b', x1, None, ('ntk',), x1.dtype)
    assert key != kernels.kernel_key('a', x1 + 1e-12, None, ('ntk',), x1.dtype)
    assert key != kernels.kernel_key('a', x1, None, ('ntk',), np.float32)
    assert key != kernels.kernel_key('a', x1, x1, ('ntk',), x1.dtype)


def test_block_size_respects_memory_budget(conv_data):
    x1, _ = conv_data
    x1 = x1.astype(np.float32)
    _, _, kernel_fn = _conv_gap()
    budget = 2e6  # bytes
    block = kernels.choose_block_size(kernel_fn, x1, 64, ('nngp', 'ntk'), budget)
    assert block >= 1
    assert kernels.measure_block_bytes(kernel_fn, x1, block,
                                       ('nngp', 'ntk')) <= budget
    # A larger budget gives blocks at least as large; FC blocks are larger
    # than conv blocks for the same budget (no spatial covariance).
    assert kernels.choose_block_size(kernel_fn, x1, 64, ('nngp', 'ntk'),
                                     8 * budget) >= block
    _, _, fc_fn = stax.serial(stax.Flatten(), stax.Dense(8), stax.Relu(),
                              stax.Dense(1))
    assert kernels.choose_block_size(fc_fn, x1, 64, ('nngp', 'ntk'),
                                     budget) > block


def test_budget_too_small_is_a_clear_error(conv_data):
    x1, _ = conv_data
    _, _, kernel_fn = _conv_gap()
    with pytest.raises(MemoryError, match='kernel.memory_gb'):
        kernels.choose_block_size(kernel_fn, x1.astype(np.float32), 8, ('ntk',),
                                  10.0)
