"""The empirical NTK Gram matrix in blocks that fit a memory budget.

``Theta(x, x') = J(x) J(x')^T`` (Jacot et al. 2018, Eq. 2), traced over the
outputs, is the kernel the alignment studies eigen-decompose along training
(Kopitkov & Indelman 2019). Its cost in device memory grows with the block of
inputs computed at once: Jacobian contraction holds one Jacobian row per input
and output (a WRN-10-4's 1.22M parameters times 10 logits: about 49 MB per
image in float32), the structured derivatives every layer's cotangents. As for the
infinite-width kernels (:mod:`ntkexp.kernels`), ``block_size='auto'`` takes
the largest block whose compiled XLA program (arguments, outputs and
temporaries, from ``Compiled.memory_analysis()``) fits the budget,
``kernel.memory_gb`` in runs: all inputs in one block when they fit (one
compile, which the run then uses), else the sizes chosen by
:func:`ntkexp.kernels.choose_block_size`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import jax.numpy as jnp
import numpy as np

from ntkexp import kernels
from ntkexp import ntk_drift
from ntkexp import structured_ntk

log = logging.getLogger(__name__)

#: ``block_size`` that sizes blocks from the memory budget.
AUTO = 'auto'


def _pad_rows(x: jnp.ndarray, rows: int) -> jnp.ndarray:
    """``x`` with zero rows appended up to ``rows`` (one compiled shape)."""
    if x.shape[0] == rows:
        return x
    pad = jnp.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)
    return jnp.concatenate([x, pad])


def _shape(x: Optional[jnp.ndarray]):
    return None if x is None else (tuple(x.shape), str(x.dtype))


class EmpiricalNTK:
    """Empirical NTK Gram matrices ``J(x1) J(x2)^T``, averaged over outputs.

    :func:`ntkexp.ntk_drift.empirical_ntk_fn` (``nt.empirical_ntk_fn(apply_fn,
    trace_axes=(-1,), vmap_axes=0, implementation=...)`` or ntkexp's
    structured derivatives), compiled once per block shape, evaluated in
    ``block x block`` blocks (symmetric blocks computed once) and returned as
    a float64 numpy array. ``implementation=0`` ('auto') tries ntkexp's
    structured derivatives (:mod:`ntkexp.structured_ntk`) and
    neural-tangents' (Novak et al. 2022, "Fast Finite Width Neural Tangent
    Kernel"), ntkexp's first on networks with convolutions
    (:func:`ntkexp.structured_ntk.has_convolution_taps`), and falls back to
    the Jacobian contraction if both fail on the model
    (``tests/test_alignment.py`` checks that all agree).

    Args:
        apply_fn: ``apply_fn(params, x)``.
        implementation: 0 (auto), 1, 2 or 3 (``nt.NtkImplementation``) or 4
            and 5 (ntkexp's structured derivatives).
        block_size: rows per block; None = one block; ``'auto'``: the
            largest block whose compiled program fits ``memory_gb``.
        memory_gb: the device memory budget of one block (``'auto'``); a GPU
            that can allocate less gets blocks sized for what it has.
        safety: fraction of ``memory_gb`` kept free.

    Attributes:
        implementation: the implementation in use (0 until 'auto' settles).
        last_block: the block size of the last call.
        last_choice: the :class:`ntkexp.kernels.BlockChoice` of the last call
            when ``'auto'`` split it into blocks (None: one block fitted).
        last_bytes: the compiled bytes of the last call's program (``'auto'``).
    """

    def __init__(self, apply_fn: Callable, implementation: int = 0,
                 block_size: int | str | None = None, memory_gb: float = 4.0,
                 safety: float = 0.1):
        self.apply_fn = apply_fn
        self.implementation = int(implementation)
        if block_size is not None and block_size != AUTO:
            block_size = int(block_size)
            if block_size < 1:
                raise ValueError(f'block_size={block_size} must be >= 1, None '
                                 f'or {AUTO!r}')
        self.block_size = block_size
        self.memory_gb = float(memory_gb)
        self.safety = float(safety)
        self.last_block: int | None = None
        self.last_choice: kernels.BlockChoice | None = None
        self.last_bytes: int | None = None
        self._fns: dict[int, Callable] = {}
        self._programs: dict[tuple, Any] = {}
        self._blocks: dict[tuple, tuple] = {}

    @classmethod
    def for_run(cls, cfg: Any, apply_fn: Callable, implementation: int,
                block_size: int | str | None = AUTO) -> 'EmpiricalNTK':
        """The kernel of a run: blocks sized from its ``kernel.memory_gb``."""
        memory_gb = (cfg.get('kernel') or {}).get('memory_gb', 4.0)
        return cls(apply_fn, implementation, block_size, memory_gb=float(memory_gb))

    def _fn(self, implementation: int) -> Callable:
        if implementation not in self._fns:
            self._fns[implementation] = ntk_drift.empirical_ntk_fn(
                self.apply_fn, implementation)
        return self._fns[implementation]

    def _program(self, implementation: int, a: jnp.ndarray,
                 b: Optional[jnp.ndarray], params: Any):
        """The compiled ``kernel(a, b, params)`` for these shapes (compiled once)."""
        key = (implementation, _shape(a), _shape(b))
        if key not in self._programs:
            self._programs[key] = self._fn(implementation).lower(
                a, b, params).compile()
        return self._programs[key]

    def __call__(self, x1: jnp.ndarray, x2: Optional[jnp.ndarray],
                 params: Any) -> np.ndarray:
        """The ``(n1, n2)`` kernel (``x2=None``: ``x1`` against itself)."""
        if self.implementation == 0:
            for implementation in self._auto_order(x1, params):
                try:
                    out = self._compute(implementation, x1, x2, params)
                    self.implementation = implementation
                    return out
                except Exception as error:  # pylint: disable=broad-except
                    log.warning('empirical NTK implementation %d failed (%s); '
                                'trying the next', implementation, error)
            self.implementation = 1
        return self._compute(self.implementation, x1, x2, params)

    def _auto_order(self, x: jnp.ndarray, params: Any) -> tuple[int, int]:
        ours = ntk_drift.NTKEXP_STRUCTURED
        try:
            convolutions = structured_ntk.has_convolution_taps(
                self.apply_fn, params, x)
        except Exception:  # pylint: disable=broad-except
            convolutions = False
        return (ours, 3) if convolutions else (3, ours)

    def _block(self, implementation: int, x1: jnp.ndarray,
               x2: Optional[jnp.ndarray], params: Any) -> int:
        """Rows per block for this call (sets ``last_*``)."""
        n = max(x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0])
        self.last_choice = self.last_bytes = None
        if self.block_size is None:
            return n
        if self.block_size != AUTO:
            return self.block_size
        key = (implementation, _shape(x1), _shape(x2))
        if key not in self._blocks:
            self._blocks[key] = self._choose(implementation, n, x1, x2, params)
        block, self.last_choice, self.last_bytes = self._blocks[key]
        return block

    def _choose(self, implementation: int, n: int, x1: jnp.ndarray,
                x2: Optional[jnp.ndarray], params: Any) -> tuple:
        """``(block, choice, bytes)`` for ``n`` inputs: one block if its
        program fits the budget, else :func:`ntkexp.kernels.choose_block_size`
        over square off-diagonal blocks (the larger program: two inputs'
        Jacobians)."""
        budget = kernels.budget_bytes(self.memory_gb, 'empirical NTK blocks')
        whole = kernels.compiled_bytes(self._program(implementation, x1, x2, params))
        if whole <= budget * (1 - self.safety):
            return n, None, whole
        del self._programs[(implementation, _shape(x1), _shape(x2))]
        measured = {}  # block size -> its program's key

        def measure(size: int) -> int:
            rows = jnp.zeros((size,) + x1.shape[1:], x1.dtype)
            measured[size] = (implementation, _shape(rows), _shape(rows))
            return kernels.compiled_bytes(
                self._program(implementation, rows, rows, params))

        choice = kernels.choose_block_size(
            measure, n, budget, safety=self.safety, what='empirical NTK')
        for size, key in measured.items():  # keep only the program that runs
            if size != choice.block:
                del self._programs[key]
        return choice.block, choice, choice.measured_bytes

    def _compute(self, implementation: int, x1: jnp.ndarray,
                 x2: Optional[jnp.ndarray], params: Any) -> np.ndarray:
        symmetric = x2 is None
        b = self._block(implementation, x1, x2, params)
        self.last_block = b
        x2_ = x1 if symmetric else x2
        n1, n2 = x1.shape[0], x2_.shape[0]
        if n1 <= b and n2 <= b:
            run = self._program(implementation, x1, x2, params)
            return np.asarray(run(x1, x2, params), np.float64)

        def block(x, i):
            # Pad the last block to b rows: one compiled shape for all blocks.
            return _pad_rows(x[i:i + b], b)

        first = block(x1, 0)
        run = self._program(implementation, first, first, params)
        out = np.empty((n1, n2), np.float64)
        for i in range(0, n1, b):
            for j in range(0, n2, b):
                r, c = min(b, n1 - i), min(b, n2 - j)
                if symmetric and j < i:
                    out[i:i + r, j:j + c] = out[j:j + c, i:i + r].T
                    continue
                out[i:i + r, j:j + c] = np.asarray(
                    run(block(x1, i), block(x2_, j), params), np.float64)[:r, :c]
        return out
