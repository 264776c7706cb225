"""Host (CPU) memory: what is free, and whether a kernel solve fits in it.

The block engine (:mod:`ntkexp.kernels`) keeps each device computation within
``kernel.memory_gb``, but the kernels it assembles and the solves of
:mod:`ntkexp.solve` live in host memory: ``n_train^2`` entries per kernel. The
whole MNIST train set (``dataset=mnist``, 60,000 images) needs 27 GiB per
float64 kernel, and a Cholesky factorisation one more. :func:`check_kernel_solve`
says so before any block is computed, with the largest ``n_train`` that fits,
instead of an allocation failure after hours of kernel blocks.
"""

from __future__ import annotations

import math
from pathlib import Path

GIB = 1024 ** 3

#: ``n_train^2`` float64 arrays a solve adds to the kernels it reads
#: (:mod:`ntkexp.solve`, measured as peak resident memory on n = 4,000):
#: ``t = inf`` copies the regularised kernel and factors it in place; a finite
#: ``t`` also needs ``eigh``'s workspace (LAPACK ``syevd``: 2 n^2).
SOLVE_COPIES = {'inf': 1, 'finite': 3}


class HostMemoryError(MemoryError):
    """A job's kernels and solves would not fit in this machine's memory."""


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (Linux), else None."""
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """Room left under this process's cgroup memory limit (v2 or v1): what a
    SLURM job's ``--mem`` allows. None without a limit."""
    pairs = (('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current'),
             ('/sys/fs/cgroup/memory/memory.limit_in_bytes',
              '/sys/fs/cgroup/memory/memory.usage_in_bytes'))
    for limit_path, usage_path in pairs:
        try:
            limit = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == 'max' or not limit.isdigit() or int(limit) >= 1 << 60:
            return None
        return max(0, int(limit) - usage)
    return None


def available_bytes() -> int | None:
    """Host memory this process can still allocate without swapping, in bytes:
    the smaller of the system's ``MemAvailable`` and the room under its cgroup
    limit; None where neither can be read (then nothing is checked)."""
    known = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return min(known) if known else None


def kernel_solve_bytes(n_train: int, n_test: int, n_kernels: int, itemsize: int,
                       finite_t: bool = False) -> int:
    """Peak host bytes of kernel regression on ``n_kernels`` kernels.

    The assembled train-train and test-train kernels of each (``itemsize``
    bytes per entry), plus one solve's float64 copies
    (:data:`SOLVE_COPIES`). Small arrays (targets, predictions) are left out:
    this is a lower bound.
    """
    kernels = n_kernels * (n_train * n_train + n_test * n_train) * itemsize
    copies = SOLVE_COPIES['finite' if finite_t else 'inf'] * n_train * n_train * 8
    return int(kernels + copies)


def largest_n_train(budget: int, n_test: int, n_kernels: int, itemsize: int,
                    finite_t: bool = False) -> int:
    """The largest ``n_train`` whose :func:`kernel_solve_bytes` fits ``budget``
    (``n_test`` fixed)."""
    # a n^2 + b n <= budget.
    a = n_kernels * itemsize + SOLVE_COPIES['finite' if finite_t else 'inf'] * 8
    b = n_kernels * n_test * itemsize
    n = int((-b + math.sqrt(b * b + 4 * a * budget)) / (2 * a))
    while n > 0 and kernel_solve_bytes(n, n_test, n_kernels, itemsize,
                                       finite_t) > budget:
        n -= 1
    return max(n, 0)


def check_kernel_solve(n_train: int, n_test: int, kernels: tuple[str, ...],
                       itemsize: int, finite_t: bool = False,
                       available: int | None = None) -> None:
    """Fails at once when kernel regression on these sizes cannot fit in the
    host memory left (:func:`available_bytes`, or ``available``).

    Raises:
        HostMemoryError: one line with the bytes needed and available, the
            largest ``dataset.n_train`` that fits, and the other ways out.
    """
    if available is None:
        available = available_bytes()
    if available is None:
        return
    need = kernel_solve_bytes(n_train, n_test, len(kernels), itemsize, finite_t)
    if need <= available:
        return
    fits = largest_n_train(available, n_test, len(kernels), itemsize, finite_t)
    dtype = {4: 'float32', 8: 'float64'}.get(itemsize, f'{itemsize}-byte')
    copies = SOLVE_COPIES['finite' if finite_t else 'inf']
    ways = [f'dataset.n_train={fits} or fewer (with n_test={n_test})'
            if fits > 0 else f'fewer test points (dataset.n_test, now {n_test})']
    if len(kernels) > 1:
        ways.append(f'one kernel at a time (experiment.kernels=[{kernels[-1]}])')
    ways.append('a machine with more memory (under SLURM: kernel.jobs=N '
                'computes the blocks on the cluster; the solve runs here)')
    raise HostMemoryError(
        f'{len(kernels)} {dtype} kernel(s) on {n_train} train and {n_test} test '
        f'inputs and their solve need about {need / GIB:.1f} GiB of host memory '
        f'({", ".join(kernels)}: {n_train} x {n_train} and {n_test} x {n_train} '
        f'each, plus {copies} float64 {n_train} x {n_train} '
        f'{"copy" if copies == 1 else "copies"} for the solve); this machine has '
        f'{available / GIB:.1f} GiB available. To fix: ' + '; or '.join(ways))

