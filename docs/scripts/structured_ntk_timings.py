"""ntkexp's structured derivatives against neural-tangents', and their parts.

Two tables (float32, median of 3 after a warm-up, compilation excluded):

* ``networks``: the traced empirical NTK of several networks by
  neural-tangents' structured derivatives (``nt.empirical_ntk_fn(...,
  implementation=3)``) and by :func:`ntkexp.structured_ntk.structured_ntk_fn`,
  their ratio and relative difference (what ``ntk_implementation=auto`` in
  the alignment experiment is chosen from);
* ``parts``: for a WRN-10-4 on 16 images of 32x32x3, the whole kernel and its
  backward passes alone (every layer's term replaced by a trivial sum of a
  few of its inputs, so only the traced program's forward and backward
  passes are left);
* ``memory`` (compiled only, nothing run): XLA's temporary memory of the
  jitted kernel for Jacobian contraction, neural-tangents' and ntkexp's
  structured derivatives (WRN-10-4 on 64 images, WRN-10-1 on 256).

Usage (``results/bench/session5/README.md``)::

    python docs/scripts/structured_ntk_timings.py --tables networks parts --out results/bench/session5/structured_ntk_timings.csv
    python docs/scripts/structured_ntk_timings.py --tables memory --out results/bench/session5/structured_ntk_memory.csv
"""

import argparse

import numpy as np

import script_rows

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import jax
import jax.numpy as jnp
import neural_tangents as nt

from ntkexp import bench, models
from ntkexp import structured_ntk as S

NETWORKS = {
    'fc-3-512': (lambda: models.fc(depth=3, width=512, out_dim=10), (256, 64)),
    'fc-2-2048': (lambda: models.fc(depth=2, width=2048, out_dim=10),
                  (128, 784)),
    'cnn_gap-3-64': (lambda: models.cnn(depth=3, width=64, out_dim=10,
                                        readout='gap'), (16, 16, 16, 3)),
    'wrn-10-1': (lambda: models.wrn(depth=10, width=16, out_dim=10),
                 (64, 32, 32, 3)),
}


def _setup(make, shape):
    init_fn, apply_fn, _ = make()
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    _, params = init_fn(jax.random.PRNGKey(0), shape)
    return apply_fn, x, params


def networks(repeats):
    rows = []
    for name, (make, shape) in NETWORKS.items():
        apply_fn, x, params = _setup(make, shape)
        nt_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, vmap_axes=0,
                                            implementation=3))
        ours = jax.jit(S.structured_ntk_fn(apply_fn))
        t_nt, k_nt = bench.timed(lambda: nt_fn(x, None, params), repeats)
        t_ours, k_ours = bench.timed(lambda: ours(x, None, params), repeats)
        rows.append(dict(table='networks', network=name, n=shape[0],
                         input='x'.join(map(str, shape[1:])),
                         nt_structured_s=t_nt, ntkexp_structured_s=t_ours,
                         ratio=t_nt / t_ours,
                         rel_diff=bench._rel_diff(np.asarray(k_ours),  # pylint: disable=protected-access
                                                  np.asarray(k_nt))))
    return rows


def parts(repeats):
    apply_fn, x, params = _setup(
        lambda: models.wrn(depth=10, width=64, out_dim=10), (16, 32, 32, 3))
    whole = jax.jit(S.structured_ntk_fn(apply_fn))
    t_whole, _ = bench.timed(lambda: whole(x, None, params), repeats)
    term = S._term  # pylint: disable=protected-access
    n = x.shape[0]
    S._term = lambda kind, f1, f2, traced, c: (  # pylint: disable=protected-access
        sum(jnp.sum(a.reshape(-1)[:7]) for a in f1) * jnp.ones((n, n)))
    try:
        passes = jax.jit(S.structured_ntk_fn(apply_fn))
        t_passes, _ = bench.timed(lambda: passes(x, None, params), repeats)
    finally:
        S._term = term  # pylint: disable=protected-access
    return [dict(table='parts', network='wrn-10-4', n=n, input='32x32x3',
                 whole_s=t_whole, backward_passes_s=t_passes,
                 terms_s=t_whole - t_passes)]


def memory(repeats):
    del repeats
    rows = []
    for width, n in ((64, 64), (16, 256)):
        init_fn, apply_fn, _ = models.wrn(depth=10, width=width, out_dim=10)
        x = jax.ShapeDtypeStruct((n, 32, 32, 3), jnp.float32)
        params = jax.eval_shape(lambda key: init_fn(key, x.shape)[1],
                                jax.random.PRNGKey(0))
        fns = {'JACOBIAN_CONTRACTION': nt.empirical_ntk_fn(
                   apply_fn, vmap_axes=0, implementation=1),
               'STRUCTURED_DERIVATIVES': nt.empirical_ntk_fn(
                   apply_fn, vmap_axes=0, implementation=3),
               'NTKEXP_STRUCTURED': S.structured_ntk_fn(apply_fn)}
        for method, fn in fns.items():
            analysis = jax.jit(fn).lower(x, None, params).compile(
            ).memory_analysis()
            rows.append(dict(table='memory', network=f'wrn-10-{width // 16}',
                             n=n, input='32x32x3', method=method,
                             temp_bytes=analysis.temp_size_in_bytes))
    return rows


TABLES = {'networks': networks, 'parts': parts, 'memory': memory}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--tables', nargs='*', default=list(TABLES),
                        choices=list(TABLES))
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    device = str(jax.devices()[0].device_kind)
    frame = script_rows.write_rows(
        [dict(row, device=device) for table in args.tables
         for row in TABLES[table](args.repeats)], __file__, argv, args.out)
    print(frame.drop(columns=['command']).to_string())


if __name__ == '__main__':
    main()
