"""The backend kernels are built for.

Usually ``jax.default_backend()``. :mod:`ntkexp.xla_gpu_model` compiles for an
H100 from a CPU-only process; while it does, :func:`targeting` makes the
choices that depend on the backend (``ntkexp.fastconv.recursion``'s ``'auto'``
settings and step sizes, the Pallas steps' interpreter, ``structured_ntk``'s
tensor-core products) the ones made on a GPU.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import jax

#: The backend to build for; None: ``jax.default_backend()``.
TARGET: Optional[str] = None


def target_backend() -> str:
    """:data:`TARGET`, or ``jax.default_backend()``."""
    return TARGET or jax.default_backend()


@contextlib.contextmanager
def targeting(backend: str) -> Iterator[None]:
    """Builds kernels for ``backend`` (e.g. ``'gpu'``) within the block."""
    global TARGET
    before, TARGET = TARGET, backend
    try:
        yield
    finally:
        TARGET = before
