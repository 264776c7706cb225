"""Host memory: the estimate of a kernel solve, the check before any block is
computed, and the solve's measured peak against that estimate."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ntkexp import host_memory
from ntkexp import records
from ntkexp import runner

CONF = Path(__file__).resolve().parents[1] / 'conf'
ROOT = Path(__file__).resolve().parents[1]


def test_kernel_solve_bytes_counts_each_kernel_and_the_solve_copies():
    # Two float64 kernels of 100 x 100 and 10 x 100 each, plus one float64
    # 100 x 100 copy at t = inf and three at a finite t.
    assert host_memory.kernel_solve_bytes(100, 10, 2, 8) == (
        2 * (100 * 100 + 10 * 100) * 8 + 100 * 100 * 8)
    assert host_memory.kernel_solve_bytes(100, 10, 1, 4, finite_t=True) == (
        (100 * 100 + 10 * 100) * 4 + 3 * 100 * 100 * 8)
    # The whole MNIST train set with both kernels: 89.4 GiB.
    assert host_memory.kernel_solve_bytes(60000, 10000, 2, 8) / 2**30 == (
        pytest.approx(89.4, abs=0.05))


@pytest.mark.parametrize('n_test, kernels, itemsize, finite_t', [
    (10000, 2, 8, False), (0, 1, 4, True), (37, 3, 8, True)])
def test_largest_n_train_is_the_last_size_that_fits(n_test, kernels, itemsize,
                                                    finite_t):
    budget = 22 * 2**30
    n = host_memory.largest_n_train(budget, n_test, kernels, itemsize, finite_t)
    assert host_memory.kernel_solve_bytes(n, n_test, kernels, itemsize,
                                          finite_t) <= budget
    assert host_memory.kernel_solve_bytes(n + 1, n_test, kernels, itemsize,
                                          finite_t) > budget


def test_check_names_the_sizes_and_the_ways_out():
    host_memory.check_kernel_solve(1000, 100, ('nngp', 'ntk'), 8,
                                   available=10**9)  # 17 MB: fits
    with pytest.raises(host_memory.HostMemoryError) as error:
        host_memory.check_kernel_solve(60000, 10000, ('nngp', 'ntk'), 8,
                                       available=22 * 2**30)
    message = str(error.value)
    fits = host_memory.largest_n_train(22 * 2**30, 10000, 2, 8)
    assert '89.4 GiB of host memory' in message and '22.0 GiB available' in message
    assert f'dataset.n_train={fits} or fewer' in message
    assert 'experiment.kernels=[ntk]' in message
    assert '1 float64 60000 x 60000 copy for the solve' in message


def test_available_bytes_is_positive_where_proc_meminfo_exists():
    if not Path('/proc/meminfo').exists():
        pytest.skip('no /proc/meminfo')
    available = host_memory.available_bytes()
    assert available is not None and 0 < available <= (
        os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))


def test_run_too_large_for_host_memory_fails_before_any_block(tmp_path,
                                                               monkeypatch):
    """The default job with 1 MB of host memory left: a HostMemoryError, a
    failed status record, and no kernel block computed or cached."""
    monkeypatch.setattr(host_memory, 'available_bytes', lambda: 10**6)
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose('config', overrides=[
            f'paths.root={tmp_path}', 'dataset.n_train=300', 'dataset.n_test=50',
            'kernel.progress=false'])
    with pytest.raises(host_memory.HostMemoryError, match='dataset.n_train='):
        runner.run_job(cfg, tmp_path / 'run')
    status = records.read_status(tmp_path / 'run')
    assert status['status'] == 'failed' and 'host memory' in status['error']
    kernels_dir = tmp_path / '.cache' / 'ntkexp' / 'kernels'
    assert not kernels_dir.exists()  # not even a block plan


PEAK_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    from ntkexp import solve
    n, m = 2000, 500
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, 40))
    k = a @ a.T + np.eye(n)
    k_st = rng.standard_normal((m, n))
    y = rng.standard_normal((n, 10))
    solve.predict_t(k[:50, :50], k_st[:, :50], y[:50], 1e-4, None)  # warm up
    solve.predict_t(k[:50, :50], k_st[:, :50], y[:50], 1e-4, 1.0)

    def peak():
        status = open('/proc/self/status').read()
        return int(status.split('VmHWM:')[1].split()[0]) * 1024

    open('/proc/self/clear_refs', 'w').write('5')  # resets VmHWM
    base = peak()
    solve.predict_t(k, k_st, y, 1e-4, None if sys.argv[1] == 'inf' else 10.0)
    print((peak() - base) / (n * n * 8))
''')


@pytest.mark.parametrize('t', ['inf', 'finite'])
def test_solve_peak_is_within_the_estimate(t):
    """The solve's measured resident peak beyond its inputs, in float64
    ``n x n`` arrays, is what :data:`SOLVE_COPIES` says (numpy's own eigh and
    a C-order Cholesky would take 5 and 2)."""
    if not Path('/proc/self/clear_refs').exists():
        pytest.skip('no /proc/self/clear_refs (Linux) to reset the peak')
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        pytest.skip('cannot reset the resident peak here')
    out = subprocess.run([sys.executable, '-c', PEAK_SCRIPT, t], check=True,
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    copies = float(out.stdout.strip())
    expected = host_memory.SOLVE_COPIES[t]
    assert expected - 0.1 < copies < expected + 0.5, copies
