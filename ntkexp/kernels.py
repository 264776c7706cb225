"""Block-wise infinite-width kernels with a memory budget and an on-disk cache.

Kernels are the expensive part of the papers (DESIGN.md, Conventions). This
engine computes ``kernel_fn(x1, x2, get)`` for large ``x1`` / ``x2`` in blocks:

* **Memory budget.** No block's compiled XLA program (arguments + outputs +
  temporaries, from ``Compiled.memory_analysis()``) exceeds ``memory_gb``.
  :func:`choose_block` compiles (without running) blocks of 8, 16 and 32
  inputs, fits ``bytes(B) = a + b B + c B^2`` (block memory is at most
  quadratic in the block size ``B``: ``B^2`` covariances for a
  fully-connected net, ``B^2 (H*W)^2`` for a convolutional one with pooling),
  picks the largest balanced block size predicted to fit the budget less a
  10 % margin (all inputs in one block when they fit) and compiles it to
  check, refitting with that measurement until the check passes. The choice
  (block, predicted and measured bytes) is logged, kept as
  ``KernelEngine.last_choice`` and written to the cache's ``meta.json``.
* **Time per block.** Blocks are also kept to about ``block_seconds``
  (``kernel.block_seconds``, 60 s): the engine times one 8-input block and
  caps the block size so that one block's entries take about that long. A
  1000-image CNN-GAP kernel on a CPU fits in memory as one block of hours;
  in blocks of a minute the progress bar has an ETA, a killed run loses at
  most a minute of work and ``kernel.jobs`` has blocks to share.
* **Cache and resume.** Each finished block is written atomically (temporary
  file + rename) as ``<cache>/<key>/b<size>/<i>_<j>.npz``; the key hashes the
  model config, the exact input bytes, the precision and the requested
  kernels. A killed computation resumes with the blocks already on disk, and
  the blocks are computed identically whatever the order, so the assembled
  kernel is the same bit for bit. A finished kernel is never recomputed.
* **Symmetry.** For a train-train kernel (``x2 is None``) only blocks with
  ``i <= j`` are computed; the lower triangle is filled by transposition and
  diagonal blocks are symmetrised, so the kernel is exactly symmetric.
* **Devices.** Blocks are dispatched round-robin over ``jax.local_devices()``.

The same block plan and cache serve the submitit jobs of
:mod:`ntkexp.distributed`, which split the missing blocks over processes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

log = logging.getLogger(__name__)

GIB = 1024 ** 3


def array_digest(x: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (the cache key of data)."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256()
    digest.update(str(x.dtype).encode())
    digest.update(str(x.shape).encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


# The packages whose code computes kernel values: the models' stax layers,
# ntkexp's fast kernels and the patches that make neural-tangents run.
# (Their benchmarks are left out: they compute no kernel a run caches.)
KERNEL_CODE_PACKAGES = ('models', 'fastconv', 'compat')
KERNEL_CODE_EXCLUDED = ('fastconv/bench.py', 'fastconv/stage_bench.py')


@functools.lru_cache(maxsize=None)
def kernel_code_digest() -> str:
    """SHA-256 of the source that computes kernel values (part of the key).

    A change to a model, a fast kernel or the compat patches can change
    kernels, so it must not be served an old kernel from the disk cache.
    """
    return source_digest(Path(__file__).resolve().parent)


def source_digest(root: Path) -> str:
    """SHA-256 of the ``.py`` files of ``KERNEL_CODE_PACKAGES`` under ``root``."""
    digest = hashlib.sha256()
    for package in KERNEL_CODE_PACKAGES:
        for path in sorted((root / package).rglob('*.py')):
            name = path.relative_to(root).as_posix()
            if name in KERNEL_CODE_EXCLUDED:
                continue
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def kernel_key(model_id: str, x1: np.ndarray, x2: np.ndarray | None,
               get: Sequence[str], dtype: Any) -> str:
    """The cache key of one kernel.

    It holds the model, the inputs, the dtype and the kernels, and
    everything else that changes the values: JAX's matmul precision
    (``jax_default_matmul_precision``; on GPUs the default runs float32
    products in TF32, 1e-3 relative), neural-tangents' version and the
    source of ntkexp's kernel code (:func:`kernel_code_digest`).
    """
    import jax  # pylint: disable=g-import-not-at-top
    import neural_tangents  # pylint: disable=g-import-not-at-top
    parts = {
        'model': model_id,
        'x1': array_digest(x1),
        'x2': None if x2 is None else array_digest(x2),
        'get': list(get),
        'dtype': str(np.dtype(dtype)),
        'matmul_precision': str(
            jax.config.jax_default_matmul_precision or 'default'),
        'neural_tangents': neural_tangents.__version__,
        'kernel_code': kernel_code_digest(),
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """How a kernel of shape ``(n1, n2)`` is cut into square blocks.

    Attributes:
        n1: rows (``len(x1)``).
        n2: columns (``len(x2)``, or ``n1`` when symmetric).
        block: rows and columns per block (the last ones are padded).
        symmetric: whether ``x2 is None`` (only ``i <= j`` blocks computed).
    """
    n1: int
    n2: int
    block: int
    symmetric: bool

    @property
    def rows(self) -> int:
        return -(-self.n1 // self.block)

    @property
    def cols(self) -> int:
        return -(-self.n2 // self.block)

    def blocks(self) -> list[tuple[int, int]]:
        """Every block to compute, row-major (upper triangle if symmetric)."""
        return [(i, j) for i in range(self.rows) for j in range(self.cols)
                if not self.symmetric or i <= j]


def _size(n_bytes: float) -> str:
    """``n_bytes`` in the largest binary unit that keeps it >= 1."""
    for unit, scale in (('GiB', GIB), ('MiB', 1024 ** 2), ('KiB', 1024)):
        if n_bytes >= scale:
            return f'{n_bytes / scale:.3g} {unit}'
    return f'{n_bytes:.0f} bytes'


def device_free_bytes() -> int | None:
    """Bytes the default device's allocator can still hand out (its limit
    less what is in use), or None where JAX does not say (CPUs).

    On a GPU JAX reserves 75% of the memory at start
    (``XLA_PYTHON_CLIENT_MEM_FRACTION``); the limit is that share.
    """
    import jax  # pylint: disable=g-import-not-at-top
    try:
        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # pylint: disable=broad-except
        return None
    if not stats or 'bytes_limit' not in stats:
        return None
    return int(stats['bytes_limit']) - int(stats.get('bytes_in_use', 0))


def budget_bytes(memory_gb: float, what: str = 'blocks') -> float:
    """``memory_gb`` in bytes, or what the device can still allocate if less
    (with a warning naming ``what`` is sized for that)."""
    budget = memory_gb * GIB
    free = device_free_bytes()
    if free is not None and budget > free:
        log.warning('kernel.memory_gb=%g is more than the %.3g GiB this '
                    'device can still allocate: %s are sized for that '
                    'instead', memory_gb, free / GIB, what)
        budget = max(free, 0)
    return budget


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if len(x) == rows:
        return x
    pad = np.zeros((rows - len(x),) + x.shape[1:], x.dtype)
    return np.concatenate([x, pad], axis=0)


def _normalize_get(get: Sequence[str]) -> str | tuple[str, ...]:
    """``get`` as the engine passes it to ``kernel_fn`` (a string if only one)."""
    get = tuple(get)
    return get[0] if len(get) == 1 else get


def compiled_bytes(compiled) -> int:
    analysis = compiled.memory_analysis()
    if analysis is None:
        raise RuntimeError('this backend reports no memory analysis; set '
                           'kernel.block_size explicitly')
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
               analysis.temp_size_in_bytes)


def measure_block_bytes(kernel_fn: Callable, x: np.ndarray, block: int,
                        get: Sequence[str]) -> int:
    """Device bytes XLA needs for one ``block x block`` kernel block.

    Compiles (without running) ``kernel_fn`` on two blocks of ``x``'s shape,
    called exactly as the engine calls it, and reads arguments + outputs +
    temporaries from ``memory_analysis()``.
    """
    import jax  # pylint: disable=g-import-not-at-top
    spec = jax.ShapeDtypeStruct((block,) + tuple(x.shape[1:]), x.dtype)
    fn = jax.jit(kernel_fn, static_argnames='get')
    return compiled_bytes(fn.lower(spec, spec, get=_normalize_get(get)).compile())


def _symmetrize(out):
    """``(k + k.T) / 2`` for each kernel of a diagonal block (on the device)."""
    import jax  # pylint: disable=g-import-not-at-top
    return jax.tree_util.tree_map(lambda k: (k + k.T) / 2, out)


_SYMMETRIZE_JIT = None


def _symmetrize_fn():
    global _SYMMETRIZE_JIT  # pylint: disable=global-statement
    if _SYMMETRIZE_JIT is None:
        import jax  # pylint: disable=g-import-not-at-top
        _SYMMETRIZE_JIT = jax.jit(_symmetrize)
    return _SYMMETRIZE_JIT


def measure_symmetrize_bytes(block: int, dtype: Any, n_kernels: int) -> int:
    """Device bytes of symmetrising a diagonal block's ``n_kernels`` outputs."""
    import jax  # pylint: disable=g-import-not-at-top
    spec = jax.ShapeDtypeStruct((block, block), dtype)
    compiled = _symmetrize_fn().lower(tuple([spec] * n_kernels)).compile()
    return compiled_bytes(compiled)


def block_candidates(n: int) -> list[int]:
    """Block sizes worth considering for ``n`` inputs, ascending.

    ``n`` itself (one block, no padding) and, for ``k = 2, 3, ...`` blocks per
    side, ``ceil(n / k)`` rounded up to a power-of-two multiple of at most 1/16
    of its size (at most 128): balanced blocks (little padding) with sizes that
    tile well on accelerators.
    """
    n = max(int(n), 1)
    sizes = np.unique(-(-n // np.arange(1, n + 1)))
    align = np.minimum(128, 2 ** np.maximum(0, np.floor(np.log2(sizes)) - 4))
    aligned = np.minimum(n, -(-sizes // align) * align).astype(int)
    out = set(aligned.tolist()) | {n}
    return sorted(out)


def fit_block_memory(points: dict[int, float]) -> tuple[float, float, float]:
    """``(a, b, c)`` of ``bytes(B) = a + b B + c B^2`` through measured points.

    Every stax kernel holds pairs of inputs, so its block memory is at most
    quadratic in the block size ``B`` (fully-connected: ``B^2`` covariances;
    convolutional with pooling: ``B^2 (HW)^2``). The coefficients are
    non-negative (memory grows with ``B``) and minimise the *relative* error
    over all points, so small and large measured blocks count alike.
    """
    from scipy import optimize  # pylint: disable=g-import-not-at-top
    sizes = np.array(sorted(points), float)
    values = np.array([points[int(s)] for s in sizes], float)
    if len(sizes) == 1:
        # One point: assume all of it scales like B^2 (conservative above it).
        return 0.0, 0.0, float(values[0] / sizes[0] ** 2)
    scale = sizes.max()
    basis = np.stack([np.ones_like(sizes), sizes / scale, (sizes / scale) ** 2],
                     axis=1)
    coef, _ = optimize.nnls(basis / values[:, None], np.ones_like(values))
    return float(coef[0]), float(coef[1] / scale), float(coef[2] / scale ** 2)


def predict_block_bytes(coeffs: Sequence[float], block: int | np.ndarray):
    a, b, c = coeffs
    block = np.asarray(block, float)
    return a + b * block + c * block ** 2


@dataclasses.dataclass(frozen=True)
class BlockChoice:
    """The block size chosen for a memory budget, and why.

    Attributes:
        block: rows and columns per block.
        predicted_bytes: the fitted memory model at ``block`` (the prediction
            made when ``block`` was picked, before compiling it).
        measured_bytes: XLA's compiled arguments + outputs + temporaries of
            one ``block x block`` block (the largest of the kernel program
            and the diagonal-block symmetrisation).
        budget_bytes: the configured budget (``kernel.memory_gb``).
        usable_bytes: the budget less the safety margin; both the prediction
            and the measurement of ``block`` are at most this.
        coefficients: ``(a, b, c)`` of the fitted ``a + b B + c B^2``.
        measurements: ``(B, bytes)`` of every compiled size.
        seconds: time spent compiling (and timing the probe block).
        memory_block: the largest block the memory budget allows; more than
            ``block`` when the time cap below made it smaller.
        seconds_per_entry: the measured time of one kernel entry
            (:func:`estimate_seconds_per_entry`), or None if not measured.
        timed_block: the size of the block that was timed for it.
        time_cap: the largest block that takes at most ``block_seconds``
            at that rate, or None.
    """
    block: int
    predicted_bytes: float
    measured_bytes: int
    budget_bytes: float
    usable_bytes: float
    coefficients: tuple[float, float, float]
    measurements: tuple[tuple[int, int], ...]
    seconds: float
    memory_block: int | None = None
    seconds_per_entry: float | None = None
    timed_block: int | None = None
    time_cap: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(map(list, v)) if k == 'measurements' else
                    list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


PROBE_SIZES = (8, 16, 32)


def choose_block(kernel_fn: Callable, x: np.ndarray, n_max: int,
                 get: Sequence[str], memory_bytes: float, safety: float = 0.1,
                 max_compiles: int = 8,
                 probe_sizes: Sequence[int] = PROBE_SIZES,
                 max_block: int | None = None,
                 known: dict[int, int] | None = None) -> BlockChoice:
    """The largest block size whose compiled kernel program fits ``memory_bytes``.

    :func:`choose_block_size` with, as the bytes of a block, the larger of
    ``kernel_fn`` on two ``block``-row inputs (:func:`measure_block_bytes`)
    and the symmetrisation of a diagonal block.

    Args:
        kernel_fn: a neural-tangents ``kernel_fn``.
        x: example inputs (only shape and dtype are used).
        n_max: no block larger than this (the number of inputs).
        get: the kernels computed (``('nngp', 'ntk')``...).
        memory_bytes, safety, max_compiles, probe_sizes, max_block, known:
            as in :func:`choose_block_size`.

    Returns:
        The :class:`BlockChoice`.

    Raises:
        MemoryError: even a 1 x 1 block exceeds the budget.
    """
    n_kernels = len(tuple(get))

    def measure(size: int) -> int:
        return max(measure_block_bytes(kernel_fn, x, size, get),
                   measure_symmetrize_bytes(size, x.dtype, n_kernels))

    return choose_block_size(measure, n_max, memory_bytes, safety=safety,
                             max_compiles=max_compiles, probe_sizes=probe_sizes,
                             max_block=max_block, known=known)


def choose_block_size(measure: Callable[[int], int], n_max: int,
                      memory_bytes: float, safety: float = 0.1,
                      max_compiles: int = 8,
                      probe_sizes: Sequence[int] = PROBE_SIZES,
                      max_block: int | None = None,
                      known: dict[int, int] | None = None,
                      what: str = 'kernel') -> BlockChoice:
    """The largest block size whose compiled program fits ``memory_bytes``.

    1. Compiles (without running) blocks of ``probe_sizes`` (capped by
       ``n_max``, and stopping at the first that exceeds the budget): sizes
       large enough for the quadratic terms to show, small enough to compile
       fast.
    2. Fits ``bytes(B) = a + b B + c B^2`` (:func:`fit_block_memory`) and
       picks the largest of :func:`block_candidates` (``n_max`` itself
       included: small problems run in one block) whose prediction is under
       the usable budget, ``memory_bytes * (1 - safety)``.
    3. Compiles that size. If it does not fit, the measurement joins the fit
       (now in the asymptotic regime) and a smaller size is picked; if it
       fits and the refitted model says a larger one also fits, that one is
       tried. At most ``max_compiles`` compiles in all.

    The returned block's *measured* bytes are always within the usable
    budget: no block run at that size exceeds ``memory_bytes``.

    Args:
        measure: ``measure(B)``, the device bytes XLA needs for one block of
            ``B`` rows (arguments + outputs + temporaries of its compiled
            program; compiles it).
        n_max: no block larger than this (the number of inputs).
        memory_bytes: the budget.
        safety: fraction of the budget kept free.
        max_compiles: compile at most this many block sizes (more only when
            halving down to a size that fits).
        probe_sizes: the first sizes compiled.
        max_block: no block larger than this either (the engine's time cap).
        known: bytes by block size from an earlier call on the same program
            and inputs (not measured again); sizes measured here are added
            to it.
        what: what the blocks are of, for the log line.

    Returns:
        The :class:`BlockChoice`.

    Raises:
        MemoryError: even a 1 x 1 block exceeds the budget.
    """
    start = time.time()
    n_inputs = max(int(n_max), 1)
    n_max = n_inputs if max_block is None else max(1, min(n_inputs, int(max_block)))
    usable = memory_bytes * (1 - safety)
    candidates = [c for c in block_candidates(n_inputs) if c <= n_max] or [n_max]
    known = {} if known is None else known
    measured = {s: b for s, b in known.items() if s <= n_max}
    predicted_at_pick: dict[int, float] = {}

    def measure_once(size: int) -> int:
        if size not in measured:
            if size not in known:
                known[size] = int(measure(size))
                log.debug('block %d: %d bytes', size, known[size])
            measured[size] = known[size]
        return measured[size]

    for size in sorted({min(int(s), n_max) for s in probe_sizes}):
        if measure_once(size) > usable:
            break  # larger probes cannot fit either
    while len(measured) < max_compiles:
        fitting_sizes = [s for s, m in measured.items() if m <= usable]
        best_ok = max(fitting_sizes, default=0)
        min_fail = min((s for s, m in measured.items() if m > usable),
                       default=n_max + 1)
        open_sizes = [c for c in candidates if best_ok < c < min_fail]
        if not open_sizes:
            break
        coeffs = fit_block_memory(measured)
        predicted = predict_block_bytes(coeffs, np.array(open_sizes))
        fits = [c for c, p in zip(open_sizes, predicted) if p <= usable]
        if fits:
            size = max(fits)
        elif best_ok:
            break  # the model says nothing larger than best_ok fits
        else:
            size = min(open_sizes)  # nothing fits by the model: check the least
        predicted_at_pick[size] = float(predict_block_bytes(coeffs, size))
        measure_once(size)
    # Halve down when the compile budget ran out before a size fitted.
    while not any(m <= usable for m in measured.values()):
        min_fail = min(measured)
        if min_fail == 1:
            raise MemoryError(
                f'one {what} entry needs {_size(measured[1])}, more than '
                f'kernel.memory_gb={memory_bytes / GIB:.3g} ({_size(memory_bytes)}) '
                f'less its {safety:.0%} safety margin; raise kernel.memory_gb')
        size = max([c for c in candidates if c <= min_fail // 2] or [1])
        measure_once(size)
    block = max(s for s, m in measured.items() if m <= usable)
    coeffs = fit_block_memory(measured)
    choice = BlockChoice(
        block=int(block),
        predicted_bytes=predicted_at_pick.get(
            block, float(predict_block_bytes(coeffs, block))),
        measured_bytes=int(measured[block]),
        budget_bytes=float(memory_bytes),
        usable_bytes=float(usable),
        coefficients=coeffs,
        measurements=tuple(sorted(measured.items())),
        seconds=time.time() - start)
    log.info('%s block size %d of %d inputs: predicted %.3g GiB, XLA '
             '%.3g GiB, budget %.3g GiB (%d sizes compiled, %.1fs)', what, block,
             n_inputs, choice.predicted_bytes / GIB, choice.measured_bytes / GIB,
             memory_bytes / GIB, len(measured), choice.seconds)
    return choice


def seconds_per_entry(kernel_fn: Callable, x: np.ndarray, get: Sequence[str],
                      probe: int = PROBE_SIZES[0]) -> float:
    """Seconds per kernel entry of one ``probe x probe`` block of ``x``'s rows.

    Runs the jitted ``kernel_fn`` once to compile it and once to time it, on
    the first ``probe`` rows of ``x`` (zero rows added if it has fewer). On a
    small block the fixed cost of a call (dispatch, transfers; more on a
    loaded machine) can dominate, so the rate is an upper bound; see
    :func:`estimate_seconds_per_entry`.
    """
    import jax  # pylint: disable=g-import-not-at-top
    fn = jax.jit(kernel_fn, static_argnames='get')
    a = jax.device_put(_pad_rows(np.asarray(x[:probe]), probe))
    get = _normalize_get(get)
    jax.block_until_ready(fn(a, a, get=get))
    start = time.perf_counter()
    jax.block_until_ready(fn(a, a, get=get))
    return (time.perf_counter() - start) / probe ** 2


MIN_TIMED_SECONDS = 0.5


def estimate_seconds_per_entry(kernel_fn: Callable, x: np.ndarray,
                               get: Sequence[str], max_block: int,
                               block_seconds: float,
                               min_seconds: float = MIN_TIMED_SECONDS,
                               ) -> tuple[float, int]:
    """The per-entry time that decides the ``block_seconds`` cap.

    Times a ``PROBE_SIZES[0]``-input block (:func:`seconds_per_entry`). That
    rate overestimates cheap kernels, whose small blocks take mostly the fixed
    cost of a call. So while the rate would cap the block below ``max_block``
    and the timed call took under ``min_seconds``, a larger block is timed:
    one that takes about ``min_seconds`` at the rate so far (at least twice
    the size, at most ``max_block``). Expensive kernels stop at the first
    probe; cheap ones stop once the cap no longer binds or the call is long
    enough for the fixed cost not to matter.

    Args:
        kernel_fn: a neural-tangents ``kernel_fn``.
        x: the inputs (the first rows are timed).
        get: the kernels computed.
        max_block: the memory-derived block; no probe is larger.
        block_seconds: the target seconds of one block.
        min_seconds: a timed call at least this long is taken as it is.

    Returns:
        ``(seconds per entry, size of the block that gave it)``.
    """
    size = max(1, min(PROBE_SIZES[0], int(max_block)))
    while True:
        per_entry = seconds_per_entry(kernel_fn, x, get, size)
        if (time_cap(per_entry, block_seconds) >= max_block
                or per_entry * size ** 2 >= min_seconds or size >= max_block):
            return per_entry, size
        size = min(int(max_block), max(2 * size, time_cap(per_entry, min_seconds)))


#: Projected seconds of the blocks still to compute above which
#: ``KernelEngine.__call__`` says how to make the kernel cheaper.
LONG_KERNEL_SECONDS = 300.0


def time_cap(seconds_per_entry_: float, block_seconds: float) -> int:
    """The largest block ``B`` whose ``B^2`` entries take at most
    ``block_seconds`` at ``seconds_per_entry_`` (at least 1)."""
    return max(1, int(math.sqrt(block_seconds / max(seconds_per_entry_, 1e-30))))


class BlockCache:
    """Finished kernel blocks on disk, one ``.npz`` per block, written atomically.

    Args:
        root: ``<cache>/<key>/b<block>``; ``None`` keeps blocks in memory only.
    """

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        self._memory: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)

    def path(self, i: int, j: int) -> Path:
        return self.root / f'{i}_{j}.npz'

    def has(self, i: int, j: int) -> bool:
        if self.root is None:
            return (i, j) in self._memory
        return self.path(i, j).exists()

    def load(self, i: int, j: int) -> dict[str, np.ndarray]:
        if self.root is None:
            return self._memory[(i, j)]
        with np.load(self.path(i, j)) as data:
            return {k: data[k] for k in data.files}

    def save(self, i: int, j: int, arrays: dict[str, np.ndarray]) -> None:
        if self.root is None:
            self._memory[(i, j)] = arrays
            return
        final = self.path(i, j)
        tmp = final.with_name(f'.{final.stem}.{os.getpid()}.tmp.npz')
        with open(tmp, 'wb') as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)


def implementation(kernel_fn: Callable) -> str:
    """What computes ``kernel_fn``'s kernels: ``'neural-tangents'``, or
    ntkexp's own recursion (:mod:`ntkexp.fastconv`, selected by
    ``model.fast_kernel``) as ``'ntkexp recursion (xla)'`` / ``'ntkexp
    recursion (pallas <kind>)'``; calls it does not handle still go to
    neural-tangents."""
    if not getattr(kernel_fn, 'fastconv', False):
        return 'neural-tangents'
    kind = getattr(kernel_fn, 'pallas_kind', None)
    return f'ntkexp recursion (pallas {kind})' if kind else 'ntkexp recursion (xla)'


def existing_block_size(key_dir: Path) -> int | None:
    """Block size of a kernel already (partly) in the cache, if any."""
    if not key_dir.exists():
        return None
    sizes = [int(p.name[1:]) for p in key_dir.glob('b*') if p.name[1:].isdigit()
             and any(p.glob('*.npz'))]
    return max(sizes) if sizes else None


@dataclasses.dataclass
class KernelEngine:
    """Computes infinite-width kernels block by block (see module docstring).

    Attributes:
        kernel_fn: a neural-tangents ``kernel_fn``.
        model_id: a string identifying the architecture (its config), part of
            the cache key.
        get: which kernels to compute, e.g. ``('nngp', 'ntk')``.
        memory_gb: device memory budget for one block (XLA's compiled
            arguments + outputs + temporaries); block sizes derive from it
            (:func:`choose_block`). A GPU that can allocate less
            (:func:`device_free_bytes`) gets blocks sized for what it has.
        block_size: fixed block size (overrides ``memory_gb``).
        cache_dir: root of the block cache, or ``None`` for no disk cache.
        progress: show a progress bar with ETA.
        safety: fraction of ``memory_gb`` kept free when choosing blocks.
        block_seconds: also keep each block to about this many seconds, from
            timed probe blocks (:func:`estimate_seconds_per_entry`), so that the
            progress bar has an ETA after the first block, a killed run loses
            at most one block of work, and ``kernel.jobs`` has blocks to
            share; None: blocks as large as the memory budget allows. The
            probe runs on this process's device.
    """
    kernel_fn: Callable
    model_id: str
    get: tuple[str, ...] = ('nngp', 'ntk')
    memory_gb: float = 4.0
    block_size: int | None = None
    cache_dir: Path | str | None = None
    progress: bool = True
    safety: float = 0.1
    block_seconds: float | None = 60.0

    def __post_init__(self):
        self.get = tuple(self.get)
        self._jitted = None
        self._choices: dict[tuple, BlockChoice] = {}
        self.last_plan: BlockPlan | None = None
        self.last_cache: BlockCache | None = None
        self.last_choice: BlockChoice | None = None
        self.computed_blocks = 0

    # Planning -----------------------------------------------------------------

    def choose(self, x: np.ndarray, n_max: int) -> BlockChoice:
        """The memory-budgeted block choice (compiled once per input shape)."""
        key = (tuple(x.shape[1:]), str(x.dtype), int(n_max), self.memory_gb,
               self.safety, self.block_seconds)
        if key not in self._choices:
            self._choices[key] = self._choose(x, n_max)
        return self._choices[key]

    def _choose(self, x: np.ndarray, n_max: int) -> BlockChoice:
        """The memory-budgeted block, capped by ``block_seconds``."""
        known: dict[int, int] = {}
        budget = budget_bytes(self.memory_gb)
        log.info('sizing kernel blocks for kernel.memory_gb=%g: compiling the '
                 'kernel at a few block sizes (up to minutes for large '
                 'convolutional nets)', self.memory_gb)
        choice = choose_block(self.kernel_fn, x, n_max, self.get, budget,
                              safety=self.safety, known=known)
        if not self.block_seconds or choice.block <= PROBE_SIZES[0]:
            return choice
        start = time.time()
        per_entry, timed = estimate_seconds_per_entry(
            self.kernel_fn, x, self.get, choice.block, self.block_seconds)
        cap = time_cap(per_entry, self.block_seconds)
        timing = dict(memory_block=choice.block, seconds_per_entry=per_entry,
                      timed_block=timed, time_cap=cap)
        if cap >= choice.block:
            return dataclasses.replace(
                choice, seconds=choice.seconds + time.time() - start, **timing)
        capped = choose_block(self.kernel_fn, x, n_max, self.get, budget,
                              safety=self.safety, max_block=cap, known=known)
        log.info('kernel block size %d, not %d: one %d-input block would take '
                 'about %.0f s at %.3g s per entry (timed on %d inputs); '
                 'kernel.block_seconds=%g keeps blocks to about that (null: as '
                 'large as memory allows)', capped.block, choice.block,
                 choice.block, choice.block ** 2 * per_entry, per_entry, timed,
                 self.block_seconds)
        return dataclasses.replace(
            capped, seconds=choice.seconds + capped.seconds + time.time() - start,
            **timing)

    def plan(self, x1: np.ndarray, x2: np.ndarray | None) -> tuple[BlockPlan, BlockCache]:
        """The block plan and cache of the kernel ``k(x1, x2)``.

        Sets ``last_choice`` to the :class:`BlockChoice` when the block size
        was derived from ``memory_gb`` here (``None`` when it was fixed or
        taken from a kernel already in the cache).
        """
        key_dir = None
        if self.cache_dir is not None:
            # Hashing the inputs costs time; only the disk cache needs the key.
            key = kernel_key(self.model_id, x1, x2, self.get, x1.dtype)
            key_dir = Path(self.cache_dir) / key
        n1 = len(x1)
        n2 = n1 if x2 is None else len(x2)
        block = self.block_size
        self.last_choice = None
        if block is None and key_dir is not None:
            block = existing_block_size(key_dir)
        if block is None:
            self.last_choice = self.choose(x1, max(n1, n2))
            block = self.last_choice.block
        plan = BlockPlan(n1, n2, int(block), x2 is None)
        cache = BlockCache(None if key_dir is None else key_dir / f'b{block}')
        if key_dir is not None:
            meta = {'n1': n1, 'n2': n2, 'block': block, 'symmetric': x2 is None,
                    'get': list(self.get), 'model': self.model_id,
                    'dtype': str(x1.dtype)}
            if self.last_choice is not None:
                meta['block_choice'] = self.last_choice.as_dict()
            meta_path = key_dir / 'meta.json'
            if not meta_path.exists():
                tmp = key_dir / f'.meta.{os.getpid()}.json'
                tmp.write_text(json.dumps(meta, indent=2))
                os.replace(tmp, meta_path)
        return plan, cache

    def missing(self, plan: BlockPlan, cache: BlockCache) -> list[tuple[int, int]]:
        return [b for b in plan.blocks() if not cache.has(*b)]

    # Computing ----------------------------------------------------------------

    def _fn(self):
        if self._jitted is None:
            import jax  # pylint: disable=g-import-not-at-top
            self._jitted = jax.jit(self.kernel_fn, static_argnames='get')
        return self._jitted

    def compute_blocks(self, x1: np.ndarray, x2: np.ndarray | None,
                       plan: BlockPlan, cache: BlockCache,
                       blocks: Iterable[tuple[int, int]],
                       desc: str = 'kernel') -> int:
        """Computes and caches ``blocks`` (skipping those already cached).

        Returns:
            The number of blocks computed.
        """
        import jax  # pylint: disable=g-import-not-at-top
        from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
        x2_ = x1 if x2 is None else x2
        todo = [b for b in blocks if not cache.has(*b)]
        devices = jax.local_devices()
        fn = self._fn()
        symmetrize = _symmetrize_fn()
        get = _normalize_get(self.get)
        b = plan.block
        # A side shorter than a block is one block, not padded to ``b``.
        rows_b, cols_b = min(b, plan.n1), min(b, plan.n2)
        bar = tqdm(total=len(todo), desc=desc, unit='block',
                   disable=not self.progress or not todo, leave=False)
        done = 0
        in_flight: list[tuple[tuple[int, int], Any, tuple[int, int]]] = []

        def drain(limit: int):
            nonlocal done
            while len(in_flight) > limit:
                (i, j), out, (r, c) = in_flight.pop(0)
                arrays = {g: np.asarray(getattr(out, g) if isinstance(get, tuple)
                                        else out)[:r, :c]
                          for g in self.get}
                cache.save(i, j, arrays)
                done += 1
                bar.update(1)

        for n, (i, j) in enumerate(todo):
            rows = x1[i * b:(i + 1) * b]
            cols = x2_[j * b:(j + 1) * b]
            device = devices[n % len(devices)]
            a = jax.device_put(_pad_rows(rows, rows_b), device)
            diagonal = plan.symmetric and i == j
            c = a if diagonal else jax.device_put(_pad_rows(cols, cols_b), device)
            out = fn(a, c, get=get)
            if diagonal:
                # Diagonal blocks of k(x, x): exactly symmetric (on the device;
                # the same IEEE operations as on the host, so the same bits).
                out = symmetrize(out)
            in_flight.append(((i, j), out, (len(rows), len(cols))))
            drain(len(devices) - 1)
        drain(0)
        bar.close()
        self.computed_blocks += done
        return done

    def assemble(self, plan: BlockPlan, cache: BlockCache,
                 dtype: Any) -> dict[str, np.ndarray]:
        """The full kernels from the cached blocks."""
        out = {g: np.empty((plan.n1, plan.n2), dtype) for g in self.get}
        b = plan.block
        for i, j in plan.blocks():
            arrays = cache.load(i, j)
            for g in self.get:
                block = arrays[g]
                out[g][i * b:i * b + block.shape[0],
                       j * b:j * b + block.shape[1]] = block
                if plan.symmetric and i != j:
                    out[g][j * b:j * b + block.shape[1],
                           i * b:i * b + block.shape[0]] = block.T
        return out

    def diagonal(self, x: np.ndarray, desc: str = 'kernel diagonal',
                 chunk: int = 256) -> dict[str, np.ndarray]:
        """``{get: [k(x_i, x_i)]}``: the diagonal of ``k(x, x)`` alone.

        What a predictive variance needs (Lee et al. 2019, "Wide Neural
        Networks of Any Depth Evolve as Linear Models", Eq. 16 and its NNGP
        form): each entry is a ``1 x 1`` kernel, so ``n`` inputs cost ``n``
        kernel entries, not the ``n^2`` of ``self(x, None)``. Computed in
        jitted chunks of ``chunk`` inputs (one input at a time inside a
        chunk, ``lax.map``), not cached.
        """
        import jax  # pylint: disable=g-import-not-at-top
        import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
        from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
        x = np.asarray(x)
        get = _normalize_get(self.get)

        def one(xi):
            out = self.kernel_fn(xi[None], None, get=get)
            return {g: jnp.reshape(getattr(out, g) if isinstance(get, tuple)
                                   else out, ()) for g in self.get}

        fn = jax.jit(lambda xs: jax.lax.map(one, xs))
        chunk = max(1, min(int(chunk), len(x)))
        out = {g: np.empty(len(x), x.dtype) for g in self.get}
        starts = range(0, len(x), chunk)
        for start in tqdm(starts, desc=desc, unit='chunk',
                          disable=not self.progress or len(starts) < 2,
                          leave=False):
            # The last chunk padded like the blocks: same shape, no recompile.
            values = fn(_pad_rows(x[start:start + chunk], chunk))
            for g in self.get:
                out[g][start:start + chunk] = np.asarray(values[g])[
                    :len(x) - start]
        return out

    def _say_if_long(self, plan: BlockPlan, cache: BlockCache,
                     desc: str) -> None:
        """Warns, with the ways to shorten it, when the blocks still to
        compute project to more than :data:`LONG_KERNEL_SECONDS` (from the
        time per entry measured for ``block_seconds``, when it was)."""
        per_entry = getattr(self.last_choice, 'seconds_per_entry', None)
        if not per_entry:
            return
        todo = [ij for ij in plan.blocks() if not cache.has(*ij)]
        seconds = len(todo) * plan.block ** 2 * per_entry
        if seconds > LONG_KERNEL_SECONDS:
            log.warning(
                '%s (%d x %d inputs): about %.0f min on this device (%d blocks '
                'of %d, %.3g s per entry). For a first look use fewer inputs '
                '(dataset.n_train, dataset.n_test); kernel.jobs=N splits the '
                'blocks over N processes or SLURM jobs (docs/cluster.md); '
                'finished blocks are kept, so a re-run resumes.', desc,
                plan.n1, plan.n2, seconds / 60, len(todo), plan.block,
                per_entry)

    def __call__(self, x1: np.ndarray, x2: np.ndarray | None = None,
                 desc: str = 'kernel') -> dict[str, np.ndarray]:
        """``{get: kernel}`` for ``k(x1, x2)`` (``x2=None``: ``k(x1, x1)``)."""
        x1 = np.asarray(x1)
        x2 = None if x2 is None else np.asarray(x2)
        plan, cache = self.plan(x1, x2)
        self.last_plan, self.last_cache = plan, cache
        self._say_if_long(plan, cache, desc)
        start = time.time()
        blocks = plan.blocks()
        computed = self.compute_blocks(x1, x2, plan, cache, blocks, desc)
        total = len(blocks)
        if computed:
            log.info('%s: %d blocks of %d computed in %.1fs', desc, computed,
                     total, time.time() - start)
        if computed < total and cache.root is not None:
            log.info('%s: %d blocks of %d read from the kernel cache %s '
                     '(kernel.cache=false recomputes)', desc, total - computed,
                     total, cache.root)
        return self.assemble(plan, cache, x1.dtype)
