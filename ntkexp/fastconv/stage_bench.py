"""One convolution + ReLU (+ 2x2 pool) step of the CNTK, variant by variant.

Times the step that dominates the Myrtle / CNN-GAP kernels at full
resolution, on a block of ``2 x 32`` pairs of ``side x side`` covariances
(made from random images: the first layer's covariance after its ReLU), for
the XLA recursion (:func:`ntkexp.fastconv.pallas._xla_conv_relu`), the
alternative XLA formulation :func:`ntkexp.fastconv.recursion.conv_relu_pool`
and the Pallas kernel (:func:`ntkexp.fastconv.pallas.conv_relu`) with both
grid orders, each checked against the first. Prints microseconds per pair.
On a CPU the Pallas rows run in the interpreter (slow; a check only).

Usage::

    JAX_DEFAULT_MATMUL_PRECISION=highest python -m ntkexp.fastconv.stage_bench 32
"""
import functools, statistics, sys, time
import numpy as np, jax, jax.numpy as jnp
import ntkexp  # noqa
from ntkexp.fastconv import pallas, recursion

def timed(f, reps=5):
    jax.block_until_ready(f()); ts = []
    for _ in range(reps):
        t = time.perf_counter(); jax.block_until_ready(f()); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

b1, b2, h = 2, 32, int(sys.argv[1]) if len(sys.argv) > 1 else 32
interp = jax.default_backend() == 'cpu'
rng = np.random.RandomState(0)
x = rng.randn(b1 + b2, h, h, 3).astype(np.float32)
pt = recursion.patches(jnp.asarray(x), 3)
raw = jnp.einsum('ahwk,bxyk->abhwxy', pt[:b1], pt[b1:], precision='highest') / 27
var = jnp.einsum('ahwk,ahwk->ahw', pt, pt, precision='highest') / 27
prod = var[:b1, None, :, :, None, None] * var[None, b1:, None, None, :, :]
n1, d1 = recursion.relu(raw, prod)
t1 = raw * d1
v2 = var * 0.5
c = dict(k=3, scale=1.0, shift=0.0, alpha=1.0, beta=1.0, gamma=0.0)
pairs = b1 * b2
block_prod = lambda a, b: a[:, None, :, :, None, None] * b[None, :, None, None, :, :]
args = (n1, t1, v2[:b1], v2[b1:])
variants = {
  (2, 'xla_separate'): jax.jit(functools.partial(pallas._xla_conv_relu, pool=2, **c)),
  (2, 'xla_fused_pool'): jax.jit(lambda n, t, a, b: recursion.conv_relu_pool(n, t, a, b, block_prod, pool=2, **c)),
  (2, 'pallas_w4'): jax.jit(functools.partial(pallas.conv_relu, pool=2, num_warps=4, interpret=interp, **c)),
  (2, 'pallas_w4_pairs_last'): jax.jit(functools.partial(pallas.conv_relu, pool=2, num_warps=4, pairs_last=True, interpret=interp, **c)),
  (None, 'xla_separate'): jax.jit(functools.partial(pallas._xla_conv_relu, pool=None, **c)),
  (None, 'pallas_w4'): jax.jit(functools.partial(pallas.conv_relu, pool=None, num_warps=4, interpret=interp, **c)),
  (None, 'pallas_w4_pairs_last'): jax.jit(functools.partial(pallas.conv_relu, pool=None, num_warps=4, pairs_last=True, interpret=interp, **c)),
}
ref, t_ref = {}, {}
for (pool, name), f in variants.items():
    try:
        t0 = time.perf_counter(); out = jax.block_until_ready(f(*args)); comp = time.perf_counter() - t0
        if pool not in ref:
            ref[pool] = out
        err = max(float(jnp.abs(a - b).max() / jnp.abs(b).max()) for a, b in zip(out, ref[pool]))
        t = timed(lambda: f(*args))
        t_ref.setdefault(pool, t)
        print(f'side={h} pool={pool} {name}: {t / pairs * 1e6:.2f} us/pair, {t_ref[pool] / t:.2f}x xla_separate, rel err {err:.1e}, first call {comp:.1f}s', flush=True)
    except Exception as e:
        print(f'side={h} pool={pool} {name}: {type(e).__name__}: {str(e)[:300]}', flush=True)
