"""ntkexp: reproduce the Neural Tangent Kernel papers from one command line.

Importing this package makes neural-tangents 0.6.5 work on current JAX (see
:mod:`ntkexp.compat`) without importing TensorFlow.

It also caps XLA's CPU code generation at AVX2 (``--xla_cpu_max_isa=AVX2`` in
``XLA_FLAGS``, unless the user set that flag): on jaxlib 0.10 the AVX-512 code
XLA emits for float64 convolutions loads past buffer ends (an unmasked vector
load before the padding mask), which crashes float64 WRN kernels with SIGSEGV
(tests/test_x64_stability.py). The flag only concerns CPU code; GPU runs are
unaffected. It must be set before JAX runs its first computation.
"""

from ntkexp import xla_flags as _xla_flags

_xla_flags.set_default('--xla_cpu_max_isa', 'AVX2')

from ntkexp import compat as _compat  # noqa: E402

_compat.install()

__version__ = '0.1.0'
