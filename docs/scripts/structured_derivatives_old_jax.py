"""Empirical NTK of a WRN-10-k on the CPU: Jacobian contraction vs structured
derivatives, under whichever JAX runs it.

Runs unchanged under the JAX 0.4 that neural-tangents 0.6.5 was released for
(no ntkexp installed: plain neural-tangents) and under current JAX (through
ntkexp's compatibility layer), to check that the layer does not slow
``NtkImplementation.STRUCTURED_DERIVATIVES`` down (docs/compat.md, "Speed of
structured derivatives"). The network is ntkexp.models.wrn's, built here with
``stax`` so the script needs nothing but neural-tangents.

Usage::

    python docs/scripts/structured_derivatives_old_jax.py K N SIDE
"""

import statistics
import sys
import time

try:
    import ntkexp  # noqa: F401  (current JAX: neural-tangents through ntkexp)
except ImportError:
    pass
import jax
import numpy as np
import neural_tangents as nt
from neural_tangents import stax

LIN = dict(W_std=2 ** 0.5, b_std=None, parameterization='ntk')


def block(channels, stride, project):
    """Pre-activation basic block, as ``ntkexp.models.wide_resnet._block``."""
    conv3 = dict(padding='SAME', **LIN)
    main = stax.serial(stax.Conv(channels, (3, 3), (stride, stride), **conv3),
                       stax.Relu(), stax.Conv(channels, (3, 3), **conv3))
    if project:
        shortcut = stax.Conv(channels, (1, 1), (stride, stride), **conv3)
        return stax.serial(stax.Relu(), stax.FanOut(2),
                           stax.parallel(main, shortcut), stax.FanInSum())
    return stax.serial(stax.FanOut(2),
                       stax.parallel(stax.serial(stax.Relu(), main),
                                     stax.Identity()), stax.FanInSum())


def wrn10(k):
    """WRN-10-k with 10 outputs (``ntkexp.models.wrn(depth=10, k=k)``)."""
    layers, in_channels = [stax.Conv(16, (3, 3), padding='SAME', **LIN)], 16
    for group, stride in enumerate((1, 2, 2)):
        channels = 16 * k * 2 ** group
        layers.append(block(channels, stride,
                            channels != in_channels or stride != 1))
        in_channels = channels
    layers += [stax.Relu(), stax.GlobalAvgPool(), stax.Dense(10, **LIN)]
    return stax.serial(*layers)


def main(k, n, side, repeats=3):
    init_fn, apply_fn, _ = wrn10(k)
    x = np.random.RandomState(0).randn(n, side, side, 3).astype(np.float32)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    results = {}
    for impl in (nt.NtkImplementation.JACOBIAN_CONTRACTION,
                 nt.NtkImplementation.STRUCTURED_DERIVATIVES):
        fn = jax.jit(nt.empirical_ntk_fn(apply_fn, implementation=impl,
                                         vmap_axes=0))
        out = np.asarray(fn(x, None, params))
        walls = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(x, None, params))
            walls.append(time.perf_counter() - start)
        results[impl.name] = statistics.median(walls), out
    (jc, ref), (sd, out) = (results['JACOBIAN_CONTRACTION'],
                            results['STRUCTURED_DERIVATIVES'])
    print(f'jax {jax.__version__} wrn-10-{k} n={n} side={side}: '
          f'JC {jc * 1e3:.1f} ms, SD {sd * 1e3:.1f} ms, ratio {jc / sd:.2f}, '
          f'rel diff {np.abs(out - ref).max() / np.abs(ref).max():.1e}')


if __name__ == '__main__':
    main(*(int(a) for a in sys.argv[1:4]))
