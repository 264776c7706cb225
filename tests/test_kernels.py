"""The block engine equals neural-tangents' kernel_fn, respects its budget, resumes."""

import os
from pathlib import Path

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


def test_cache_key_depends_on_matmul_precision_and_kernel_code(conv_data,
                                                              monkeypatch):
    x1, _ = conv_data
    def key():
        return kernels.kernel_key('a', x1, None, ('ntk',), np.float32)
    before = jax.config.jax_default_matmul_precision
    try:
        jax.config.update('jax_default_matmul_precision', None)
        default = key()
        jax.config.update('jax_default_matmul_precision', 'default')
        assert key() == default  # the same products
        jax.config.update('jax_default_matmul_precision', 'highest')
        highest = key()
    finally:
        jax.config.update('jax_default_matmul_precision', before)
    assert highest != default
    monkeypatch.setattr(kernels, 'kernel_code_digest', lambda: 'changed')
    assert key() != default


def test_kernel_code_digest_covers_kernel_source_only(tmp_path):
    for name in ('models/a.py', 'fastconv/recursion.py', 'fastconv/bench.py',
                 'compat/rules.py', 'plot.py'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text('x = 1\n')
    digest = kernels.source_digest(tmp_path)
    for name, counts in (('models/a.py', True), ('fastconv/recursion.py', True),
                         ('compat/rules.py', True), ('fastconv/bench.py', False),
                         ('plot.py', False)):
        (tmp_path / name).write_text('x = 2\n')
        assert (kernels.source_digest(tmp_path) != digest) == counts, name
        (tmp_path / name).write_text('x = 1\n')
    assert kernels.kernel_code_digest() == kernels.source_digest(
        Path(kernels.__file__).resolve().parent)


def test_block_size_respects_memory_budget(conv_data):
    x1, _ = conv_data
    x1 = x1.astype(np.float32)
    _, _, kernel_fn = _conv_gap()
    budget = 2e6  # bytes
    block = kernels.choose_block(kernel_fn, x1, 64, ('nngp', 'ntk'), budget).block
    assert block >= 1
    assert kernels.measure_block_bytes(kernel_fn, x1, block,
                                       ('nngp', 'ntk')) <= budget
    # A larger budget gives blocks at least as large; FC blocks are larger
    # than conv blocks for the same budget (no spatial covariance).
    assert kernels.choose_block(kernel_fn, x1, 64, ('nngp', 'ntk'),
                                8 * budget).block >= block
    _, _, fc_fn = stax.serial(stax.Flatten(), stax.Dense(8), stax.Relu(),
                              stax.Dense(1))
    assert kernels.choose_block(fc_fn, x1, 64, ('nngp', 'ntk'),
                                budget).block > block


def test_budget_too_small_is_a_clear_error(conv_data):
    x1, _ = conv_data
    _, _, kernel_fn = _conv_gap()
    with pytest.raises(MemoryError, match='kernel.memory_gb'):
        kernels.choose_block(kernel_fn, x1.astype(np.float32), 8, ('ntk',),
                             10.0)


# Memory-bounded block sizes (issue 9) -------------------------------------------

def test_block_candidates_are_balanced_and_include_n():
    cands = kernels.block_candidates(10000)
    assert cands[0] == 1 and cands[-1] == 10000
    # ceil(10000 / 2) = 5000 and ceil(10000 / 4) = 2500, as multiples of 128.
    assert 5120 in cands and 2560 in cands
    for size in cands:
        assert -(-10000 // size) * size - 10000 < size  # padding < one block
    assert kernels.block_candidates(11) == [1, 2, 3, 4, 6, 11]


def test_fit_recovers_a_quadratic_block_memory():
    truth = (1000.0, 300.0, 7.0)
    points = {b: kernels.predict_block_bytes(truth, b) for b in (8, 16, 32, 512)}
    coeffs = kernels.fit_block_memory(points)
    np.testing.assert_allclose(coeffs, truth, rtol=1e-6)
    # One point: everything scales like B^2 (an upper bound above it).
    assert kernels.fit_block_memory({8: 640.0}) == (0.0, 0.0, 10.0)


def _fc_model():
    from ntkexp.models import fc
    return fc(depth=3, width=8)


def test_fc_generous_budget_is_one_block_equal_to_jit():
    """FC at n = 2048: the whole kernel in one block, as plain jit computes it."""
    x = np.random.RandomState(0).randn(2048, 4, 4, 3).astype(np.float32)
    _, _, kernel_fn = _fc_model()
    engine = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',), memory_gb=2.0,
                                  cache_dir=None, progress=False)
    out = engine(x)['ntk']
    plan, choice = engine.last_plan, engine.last_choice
    assert plan.block == 2048 and plan.blocks() == [(0, 0)]
    assert choice.block == 2048
    assert choice.measured_bytes <= choice.usable_bytes < 2.0 * kernels.GIB
    assert choice.predicted_bytes <= choice.usable_bytes
    # The probes (8, 16, 32) and one check of the whole size.
    assert [b for b, _ in choice.measurements] == [8, 16, 32, 2048]
    ref = np.asarray(jax.jit(kernel_fn, static_argnames='get')(x, x, get='ntk'))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    # The choice is compiled once per input shape, not on every call.
    engine(x)
    assert engine.last_choice is choice


def _budget_models():
    from ntkexp.models import cnn, myrtle, resnet, wrn
    return {
        'fc': (_fc_model, (4, 4, 3), 48),
        'resnet': (lambda: resnet(depth=2, width=8), (4, 4, 3), 48),
        'cnn_gap': (lambda: cnn(depth=2, width=8, readout='gap'), (4, 4, 2), 16),
        'myrtle': (lambda: myrtle(depth=5, width=8), (4, 4, 2), 16),
        'wrn': (lambda: wrn(depth=10, width=1), (4, 4, 2), 16),
    }


@pytest.mark.parametrize('arch', [
    'fc', 'resnet', 'cnn_gap',
    pytest.param('myrtle', marks=pytest.mark.slow),
    pytest.param('wrn', marks=pytest.mark.slow)])
def test_small_budget_blocks_fit_and_equal_jit(arch):
    """A budget for about half the inputs: blocks fit it, kernels are exact."""
    make, shape, n = _budget_models()[arch]
    _, _, kernel_fn = make()
    get = ('nngp', 'ntk')
    with jax.enable_x64(True):
        rng = np.random.RandomState(1)
        x1, x2 = rng.randn(n, *shape), rng.randn(n // 3, *shape)
        whole = kernels.measure_block_bytes(kernel_fn, x1, n, get)
        budget = whole / 3
        engine = kernels.KernelEngine(kernel_fn, arch, get=get,
                                      memory_gb=budget / kernels.GIB,
                                      cache_dir=None, progress=False)
        k11 = engine(x1)
        choice = engine.last_choice
        assert 1 <= choice.block < n
        assert choice.predicted_bytes <= budget
        assert choice.measured_bytes <= choice.usable_bytes <= budget
        # XLA's own figure for the block the engine ran, measured afresh.
        assert kernels.measure_block_bytes(kernel_fn, x1, choice.block,
                                           get) <= budget
        k21 = engine(x2, x1)  # test-train: rows shorter than a block
        fn = jax.jit(kernel_fn, static_argnames='get')
        ref11, ref21 = fn(x1, x1, get=get), fn(x2, x1, get=get)
    for g in get:
        for out, ref in ((k11[g], getattr(ref11, g)), (k21[g], getattr(ref21, g))):
            ref = np.asarray(ref)
            assert out.dtype == np.float64
            np.testing.assert_allclose(out, ref, rtol=1e-6,
                                       atol=1e-6 * np.abs(ref).max())
        assert np.array_equal(k11[g], k11[g].T)


def test_automatic_block_size_resumes_bit_for_bit(conv_data, tmp_path):
    """The block size of a cached kernel is reused, whatever the budget now."""
    x1, _ = conv_data
    x1 = x1.astype(np.float32)
    _, _, kernel_fn = _conv_gap()
    budget_gb = kernels.measure_block_bytes(kernel_fn, x1, 5, ('ntk',)) / kernels.GIB
    make = lambda gb: kernels.KernelEngine(kernel_fn, 'conv', get=('ntk',),
                                           memory_gb=gb, cache_dir=tmp_path,
                                           progress=False)
    first = make(budget_gb)
    full = first(x1)['ntk']
    block = first.last_plan.block
    assert 1 < block < len(x1)
    meta = __import__('json').loads(
        (first.last_cache.root.parent / 'meta.json').read_text())
    assert meta['block'] == block and meta['block_choice']['block'] == block
    files = sorted(first.last_cache.root.glob('*.npz'))
    os.remove(files[-1])  # a kill before the last block
    resumed = make(100.0)  # a budget that would give one block
    out = resumed(x1)['ntk']
    assert resumed.last_plan.block == block
    assert resumed.computed_blocks == 1
    assert np.array_equal(out, full)


def test_time_cap_keeps_blocks_to_block_seconds(monkeypatch):
    """Memory allows one block of all 48 inputs; at a probed 60 / 20^2 s per
    entry a 20-input block takes block_seconds = 60 s, so the engine runs
    blocks of at most 20 inputs (20: three per side), records why, and
    computes the same kernel. Without block_seconds nothing is probed."""
    _, _, kernel_fn = _fc_model()
    x = np.random.RandomState(2).randn(48, 4, 4, 3).astype(np.float32)
    probes = []

    def fake_seconds_per_entry(fn, x_, get, probe):
        probes.append(probe)
        return 60.0 / 20 ** 2

    monkeypatch.setattr(kernels, 'seconds_per_entry', fake_seconds_per_entry)
    engine = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',), memory_gb=2.0,
                                  cache_dir=None, progress=False,
                                  block_seconds=60.0)
    out = engine(x)['ntk']
    choice = engine.last_choice
    assert probes == [8]  # a 9.6 s call: no larger probe
    assert choice.memory_block == 48 and choice.time_cap == 20
    assert choice.timed_block == 8
    assert choice.block == 20 and engine.last_plan.blocks() == [
        (0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    assert choice.measured_bytes <= choice.usable_bytes
    ref = np.asarray(jax.jit(kernel_fn, static_argnames='get')(x, x, get='ntk'))
    # neural-tangents' float32 ReLU kernel is off by about 3e-4 relative at
    # correlation 1 (the square root of prod - nngp^2's rounding error; 3e-4
    # against float64 here, eager or jitted, docs/fastconv.md item 9). Whether a
    # 20- and a 48-input call round it alike depends on XLA's fusion: alike
    # under jax 0.10, not under 0.12. The diagonal is compared at that noise.
    off = ~np.eye(len(x), dtype=bool)
    np.testing.assert_allclose(out[off], ref[off], rtol=1e-6,
                               atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(np.diag(out), np.diag(ref), rtol=2e-3)
    # A cap above the memory block changes nothing but is recorded.
    monkeypatch.setattr(kernels, 'seconds_per_entry',
                        lambda *a: 60.0 / 100 ** 2)
    loose = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',), memory_gb=2.0,
                                 cache_dir=None, progress=False)
    loose.plan(x, None)
    assert loose.last_choice.block == 48 and loose.last_choice.time_cap == 100
    # block_seconds=None: no probe.
    monkeypatch.setattr(kernels, 'seconds_per_entry', None)
    off = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',), memory_gb=2.0,
                               cache_dir=None, progress=False, block_seconds=None)
    off.plan(x, None)
    assert off.last_choice.block == 48 and off.last_choice.time_cap is None


def test_long_kernel_says_how_to_make_it_shorter(monkeypatch, caplog):
    """At a probed 0.15 s per entry the 48-input kernel's 6 blocks of 20
    project to 6 min: one warning naming fewer inputs and kernel.jobs. At
    0.01 s per entry (one 48-input block, 23 s) nothing is said."""
    _, _, kernel_fn = _fc_model()
    x = np.random.RandomState(2).randn(48, 4, 4, 3).astype(np.float32)
    said = {}
    for per_entry in (60.0 / 20 ** 2, 0.01):
        monkeypatch.setattr(kernels, 'seconds_per_entry',
                            lambda *a, v=per_entry: v)
        engine = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',),
                                      memory_gb=2.0, cache_dir=None,
                                      progress=False, block_seconds=60.0)
        caplog.clear()
        with caplog.at_level('WARNING', logger='ntkexp.kernels'):
            engine(x, desc='train x train')
        said[per_entry] = [r.getMessage() for r in caplog.records]
    (long,) = said[60.0 / 20 ** 2]
    assert long.startswith('train x train (48 x 48 inputs): about 6 min')
    assert '6 blocks of 20' in long and 'dataset.n_train' in long
    assert 'kernel.jobs=N' in long
    assert said[0.01] == []


def test_budget_is_at_most_what_the_device_can_allocate(monkeypatch):
    """kernel.memory_gb above what the GPU can still allocate (JAX's 75%
    share, less what is in use): blocks are sized for what it has."""
    _, _, kernel_fn = _fc_model()
    x = np.random.RandomState(2).randn(48, 4, 4, 3).astype(np.float32)
    free = kernels.measure_block_bytes(kernel_fn, x, 48, ('ntk',)) // 3
    monkeypatch.setattr(kernels, 'device_free_bytes', lambda: free)
    engine = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',), memory_gb=40.0,
                                  cache_dir=None, progress=False,
                                  block_seconds=None)
    engine.plan(x, None)
    choice = engine.last_choice
    assert choice.budget_bytes == free and choice.measured_bytes <= free
    assert 1 <= choice.block < 48
    # Where JAX does not say (CPUs: memory_stats() is None) the budget stands.
    monkeypatch.undo()
    assert kernels.device_free_bytes() is None or jax.default_backend() != 'cpu'


def test_probe_grows_past_the_fixed_cost_of_a_call(monkeypatch):
    """A cheap kernel on a loaded machine: each call costs 0.2 s whatever its
    size, plus 1e-7 s per entry. Timed on 8 inputs alone, that is 3.1e-3 s
    per entry and would cap 48-input blocks at 17 for block_seconds = 1 s.
    Larger probes (16, then 32) show the true rate, under which one 48-input
    block takes 0.2 s: no cap. A kernel whose probe call is long (here 0.64 s
    for 8 inputs) is taken at its first probe and capped."""
    _, _, kernel_fn = _fc_model()
    x = np.random.RandomState(2).randn(48, 4, 4, 3).astype(np.float32)
    probes = []

    def overhead_bound(fn, x_, get, probe):
        probes.append(probe)
        return (0.2 + 1e-7 * probe ** 2) / probe ** 2

    monkeypatch.setattr(kernels, 'seconds_per_entry', overhead_bound)
    per_entry, timed = kernels.estimate_seconds_per_entry(
        kernel_fn, x, ('ntk',), max_block=48, block_seconds=1.0)
    assert probes == [8, 16, 32] and timed == 32
    assert kernels.time_cap(per_entry, 1.0) >= 48
    engine = kernels.KernelEngine(kernel_fn, 'fc', get=('ntk',), memory_gb=2.0,
                                  cache_dir=None, progress=False,
                                  block_seconds=1.0)
    engine.plan(x, None)
    choice = engine.last_choice
    assert choice.block == 48 and choice.timed_block == 32
    # Costly entries: the first probe's 0.64 s call decides.
    probes.clear()
    monkeypatch.setattr(kernels, 'seconds_per_entry',
                        lambda fn, x_, get, probe: probes.append(probe) or 1e-2)
    per_entry, timed = kernels.estimate_seconds_per_entry(
        kernel_fn, x, ('ntk',), max_block=48, block_seconds=1.0)
    assert probes == [8] and timed == 8 and kernels.time_cap(per_entry, 1.0) == 10
    # The probe never exceeds the memory block.
    probes.clear()
    monkeypatch.setattr(kernels, 'seconds_per_entry',
                        lambda fn, x_, get, probe: probes.append(probe) or 0.2 / probe ** 2)
    assert kernels.estimate_seconds_per_entry(
        kernel_fn, x, ('ntk',), max_block=12, block_seconds=1e-3)[1] == 12
    assert probes == [8, 12]


def test_seconds_per_entry_times_one_probe_block():
    _, _, kernel_fn = _fc_model()
    x = np.random.RandomState(3).randn(5, 4, 4, 3).astype(np.float32)  # < 8 rows
    per_entry = kernels.seconds_per_entry(kernel_fn, x, ('nngp', 'ntk'))
    assert 0 < per_entry < 1
    assert kernels.time_cap(1e-2, 60.0) == 77        # sqrt(6000) = 77.5
    assert kernels.time_cap(100.0, 60.0) == 1
