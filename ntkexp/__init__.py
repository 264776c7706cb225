"""ntkexp: reproduce the Neural Tangent Kernel papers from one command line.

Importing this package makes neural-tangents 0.6.5 work on current JAX (see
:mod:`ntkexp.compat`) without importing TensorFlow.
"""

from ntkexp import compat as _compat

_compat.install()

__version__ = '0.1.0'
