"""Regression test: float64 jitted WRN kernels on CPU must not crash.

With ``jax_enable_x64`` on an AVX-512 CPU, XLA (jaxlib 0.10.2) compiles float64
convolutions (Eigen only handles f16/f32 ones) into its own loop kernels, and
LLVM vectorises their zero-padding bounds check as an *unmasked* AVX-512 load
followed by a masked FMA. The load reads past the end of its buffer, so when
the buffer ends at an unmapped page the process dies with SIGSEGV (rc 139)
inside ``convolution.N_kernel``. In this project that showed up when jitting the
WRN ``kernel_fn`` with ``x2`` given (the 1x1-projection blocks alter buffer
assignment so that a 3x3 SAME f64 convolution lands at a page end). The masked
lanes are discarded, so values computed before the crash are right.

``import ntkexp`` works around it by adding ``--xla_cpu_max_isa=AVX2`` to
``XLA_FLAGS`` (CPU code generation only) unless the user already chose a
``--xla_cpu_max_isa``. The repro runs in a subprocess because the failure is a
process crash, and because XLA reads ``XLA_FLAGS`` only once per process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_SCRIPT = textwrap.dedent('''
    import json
    import ntkexp  # sets the XLA CPU workaround before any backend starts
    import jax
    import numpy as np
    jax.config.update('jax_enable_x64', True)
    from ntkexp import models

    _, _, kernel_fn = models.wrn(depth=10, width=16)
    x = np.random.RandomState(0).randn(2, 8, 8, 1)
    f = jax.jit(kernel_fn, static_argnames='get')
    jit_x2 = f(x, x, get='ntk')          # crashed here (rc 139) before the fix
    jit_x2.block_until_ready()
    jit_none = f(x, None, get='ntk')
    eager = kernel_fn(x, x, get='ntk') if EAGER else jit_none  # eager: ~30 s
    print(json.dumps({
        'dtype': str(jit_x2.dtype),
        'jit_x2': np.asarray(jit_x2).tolist(),
        'jit_none': np.asarray(jit_none).tolist(),
        'eager': np.asarray(eager).tolist(),
    }), flush=True)
''')


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _run(eager):
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    env['JAX_PLATFORMS'] = 'cpu'
    script = f'EAGER = {eager}\n' + _SCRIPT
    proc = subprocess.run([sys.executable, '-W', 'ignore', '-c', script],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, (
        f'rc={proc.returncode} (-11 = SIGSEGV)\n{proc.stderr[-2000:]}')
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['dtype'] == 'float64'
    return tuple(np.array(out[k]) for k in ('jit_x2', 'jit_none', 'eager'))


def test_wrn_x64_jit_kernel_with_x2_does_not_crash():
    jit_x2, jit_none, _ = _run(eager=False)
    assert jit_x2.shape == (2, 2)
    assert np.all(np.isfinite(jit_x2)) and np.all(np.diag(jit_x2) > 0)
    # Same compiled arithmetic with x2 given or None: agree to rounding
    # (measured: identical).
    assert _rel(jit_x2, jit_none) < 1e-10


@pytest.mark.slow
def test_wrn_x64_jit_kernel_matches_eager():
    jit_x2, _, eager = _run(eager=True)
    # Off the diagonal, jitted and eager kernels agree to 1e-10 relative
    # (measured: identical).
    off = ~np.eye(2, dtype=bool)
    assert _rel(jit_x2[off], eager[off]) < 1e-10
    # On the diagonal the ReLU arc-cosine map at correlation 1 turns rounding
    # differences of fused vs eager float64 code into ~sqrt(eps) ~ 1e-8
    # (measured 1.3e-9 relative; also without the workaround, for x2=None).
    assert _rel(jit_x2, eager) < 1e-7


def test_xla_flag_defaults_leave_the_users_flags_alone(monkeypatch):
    from ntkexp import xla_flags
    monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_max_isa=SSE4_2')
    xla_flags.set_default('--xla_cpu_max_isa', 'AVX2')
    assert os.environ['XLA_FLAGS'] == '--xla_cpu_max_isa=SSE4_2'
    xla_flags.set_default('--xla_backend_optimization_level', '0')
    assert os.environ['XLA_FLAGS'] == ('--xla_cpu_max_isa=SSE4_2 '
                                       '--xla_backend_optimization_level=0')
    monkeypatch.delenv('XLA_FLAGS')
    xla_flags.set_default('--xla_cpu_max_isa', 'AVX2')
    assert os.environ['XLA_FLAGS'] == '--xla_cpu_max_isa=AVX2'
