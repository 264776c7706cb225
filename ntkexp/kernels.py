"""Block-wise infinite-width kernels with a memory budget and an on-disk cache.

Kernels are the expensive part of the papers (DESIGN.md, Conventions). This
engine computes ``kernel_fn(x1, x2, get)`` for large ``x1`` / ``x2`` in blocks:

* **Memory budget.** The block size is the largest whose compiled XLA program
  (arguments + outputs + temporaries, from ``Compiled.memory_analysis()``)
  fits ``memory_gb``. It is measured for the architecture at hand, so a
  convolutional kernel whose intermediates grow like ``b**2 * (H*W)**2`` gets
  small blocks and a fully-connected one large blocks.
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
import hashlib
import json
import logging
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


def kernel_key(model_id: str, x1: np.ndarray, x2: np.ndarray | None,
               get: Sequence[str], dtype: Any) -> str:
    """The cache key of one kernel: model, inputs, precision and kernels."""
    import neural_tangents  # pylint: disable=g-import-not-at-top
    parts = {
        'model': model_id,
        'x1': array_digest(x1),
        'x2': None if x2 is None else array_digest(x2),
        'get': list(get),
        'dtype': str(np.dtype(dtype)),
        'neural_tangents': neural_tangents.__version__,
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


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if len(x) == rows:
        return x
    pad = np.zeros((rows - len(x),) + x.shape[1:], x.dtype)
    return np.concatenate([x, pad], axis=0)


def measure_block_bytes(kernel_fn: Callable, x: np.ndarray, block: int,
                        get: Sequence[str]) -> int:
    """Device bytes XLA needs for one ``block x block`` kernel block.

    Compiles (without running) ``kernel_fn`` on two blocks of ``x``'s shape and
    reads arguments + outputs + temporaries from ``memory_analysis()``.
    """
    import jax  # pylint: disable=g-import-not-at-top
    spec = jax.ShapeDtypeStruct((block,) + tuple(x.shape[1:]), x.dtype)
    fn = jax.jit(kernel_fn, static_argnames='get')
    compiled = fn.lower(spec, spec, get=tuple(get)).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        raise RuntimeError('this backend reports no memory analysis; set '
                           'kernel.block_size explicitly')
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes +
               analysis.temp_size_in_bytes)


def choose_block_size(kernel_fn: Callable, x: np.ndarray, n_max: int,
                      get: Sequence[str], memory_bytes: float) -> int:
    """The largest block size whose compiled program fits ``memory_bytes``.

    Measures two sizes, fits ``bytes(b) = a b^2 + c b + d`` through them and a
    third point, then verifies the chosen size by compiling it (halving until it
    fits). Block memory grows at most quadratically in ``b`` for every stax
    kernel (pairs of inputs), so the fit is an upper bound in practice, and the
    final compile makes it exact.

    Args:
        kernel_fn: a neural-tangents ``kernel_fn``.
        x: example inputs (only shape and dtype are used).
        n_max: no block larger than this (the number of inputs).
        get: the kernels computed (``('nngp', 'ntk')``...).
        memory_bytes: the budget.

    Returns:
        The block size, at least 1.

    Raises:
        MemoryError: even a 1 x 1 block exceeds the budget.
    """
    sizes = [s for s in (1, 2, 4) if s <= max(n_max, 1)] or [1]
    measured = [measure_block_bytes(kernel_fn, x, s, get) for s in sizes]
    if measured[0] > memory_bytes:
        raise MemoryError(
            f'one kernel entry needs {measured[0] / GIB:.2f} GiB, more than '
            f'kernel.memory_gb={memory_bytes / GIB:.2f}; raise kernel.memory_gb')
    if len(sizes) == 1:
        return 1
    coeffs = np.polyfit(np.array(sizes, float), np.array(measured, float),
                        deg=min(2, len(sizes) - 1))
    coeffs = np.maximum(coeffs, 0)
    candidates = 2 ** np.arange(0, 20)
    predicted = np.polyval(coeffs, candidates.astype(float))
    fits = candidates[predicted <= memory_bytes]
    block = int(min(fits.max() if len(fits) else 1, _round_up_pow2(n_max)))
    while block > sizes[-1]:
        if measure_block_bytes(kernel_fn, x, block, get) <= memory_bytes:
            break
        block //= 2
    return max(1, min(block, n_max))


def _round_up_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


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
        memory_gb: device memory budget for one block.
        block_size: fixed block size (overrides ``memory_gb``).
        cache_dir: root of the block cache, or ``None`` for no disk cache.
        progress: show a progress bar with ETA.
    """
    kernel_fn: Callable
    model_id: str
    get: tuple[str, ...] = ('nngp', 'ntk')
    memory_gb: float = 4.0
    block_size: int | None = None
    cache_dir: Path | str | None = None
    progress: bool = True

    def __post_init__(self):
        self.get = tuple(self.get)
        self._jitted = None
        self.last_plan: BlockPlan | None = None
        self.last_cache: BlockCache | None = None
        self.computed_blocks = 0

    # Planning -----------------------------------------------------------------

    def plan(self, x1: np.ndarray, x2: np.ndarray | None) -> tuple[BlockPlan, BlockCache]:
        """The block plan and cache of the kernel ``k(x1, x2)``."""
        key = kernel_key(self.model_id, x1, x2, self.get, x1.dtype)
        key_dir = None if self.cache_dir is None else Path(self.cache_dir) / key
        n1 = len(x1)
        n2 = n1 if x2 is None else len(x2)
        block = self.block_size
        if block is None and key_dir is not None:
            block = existing_block_size(key_dir)
        if block is None:
            block = choose_block_size(self.kernel_fn, x1, max(n1, n2), self.get,
                                      self.memory_gb * GIB)
            log.info('kernel block size %d (memory budget %.2f GiB)', block,
                     self.memory_gb)
        plan = BlockPlan(n1, n2, int(block), x2 is None)
        cache = BlockCache(None if key_dir is None else key_dir / f'b{block}')
        if key_dir is not None:
            meta = {'n1': n1, 'n2': n2, 'block': block, 'symmetric': x2 is None,
                    'get': list(self.get), 'model': self.model_id,
                    'dtype': str(x1.dtype)}
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
        b = plan.block
        bar = tqdm(total=len(todo), desc=desc, unit='block',
                   disable=not self.progress or not todo, leave=False)
        done = 0
        in_flight: list[tuple[tuple[int, int], Any, tuple[int, int]]] = []

        def drain(limit: int):
            nonlocal done
            while len(in_flight) > limit:
                (i, j), out, (r, c) = in_flight.pop(0)
                arrays = {g: np.asarray(getattr(out, g) if len(self.get) > 1
                                        else out)[:r, :c]
                          for g in self.get}
                if plan.symmetric and i == j:
                    # Diagonal blocks of k(x, x): exactly symmetric.
                    arrays = {g: (a + a.T) / 2 for g, a in arrays.items()}
                cache.save(i, j, arrays)
                done += 1
                bar.update(1)

        for n, (i, j) in enumerate(todo):
            rows = x1[i * b:(i + 1) * b]
            cols = x2_[j * b:(j + 1) * b]
            device = devices[n % len(devices)]
            a = jax.device_put(_pad_rows(rows, b), device)
            c = jax.device_put(_pad_rows(cols, b), device)
            out = fn(a, c, get=self.get if len(self.get) > 1 else self.get[0])
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

    def __call__(self, x1: np.ndarray, x2: np.ndarray | None = None,
                 desc: str = 'kernel') -> dict[str, np.ndarray]:
        """``{get: kernel}`` for ``k(x1, x2)`` (``x2=None``: ``k(x1, x1)``)."""
        x1 = np.asarray(x1)
        x2 = None if x2 is None else np.asarray(x2)
        plan, cache = self.plan(x1, x2)
        self.last_plan, self.last_cache = plan, cache
        start = time.time()
        computed = self.compute_blocks(x1, x2, plan, cache, plan.blocks(), desc)
        if computed:
            log.info('%s: %d blocks of %d computed in %.1fs', desc, computed,
                     len(plan.blocks()), time.time() - start)
        return self.assemble(plan, cache, x1.dtype)
