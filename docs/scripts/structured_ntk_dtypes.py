"""ntkexp's structured NTK against Jacobian contraction, float32 and float64.

The CPU ratios of the fast infinite-width kernels owe a factor of 3-4 to
neural-tangents' slow float32 convolutions on a CPU
(``xla_cpu_conv_dtypes.py``). This checks whether the empirical NTK's ratio
(issue 9) has the same bias: the traced NTK of a WRN-10-4 (10 logits) on
``n`` 32x32x3 images, ``x2=None``, by Jacobian contraction
(``nt.empirical_ntk_fn(..., implementation=1)``) and by
:func:`ntkexp.structured_ntk.structured_ntk_fn`, median of 3 after a warm-up,
once per precision, each in a fresh process.

Usage (``results/bench/session7/README.md``)::

    python docs/scripts/structured_ntk_dtypes.py --n 8 --out results/bench/session7/structured_ntk_dtypes.csv
"""

import argparse
import json
import statistics
import time

import numpy as np

import script_rows


def measure(dtype: str, n: int) -> dict:
    """Seconds of both implementations and their relative difference."""
    import ntkexp  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
    from ntkexp import models  # pylint: disable=g-import-not-at-top
    from ntkexp import structured_ntk  # pylint: disable=g-import-not-at-top
    if dtype == 'float64':
        jax.config.update('jax_enable_x64', True)
    init_fn, apply_fn, _ = models.wrn(depth=10, width=64, out_dim=10)
    x = jnp.asarray(np.random.RandomState(0).randn(n, 32, 32, 3), dtype)
    _, params = jax.jit(init_fn, static_argnums=1)(jax.random.PRNGKey(0),
                                                    x.shape)
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    fns = {'jacobian_contraction': jax.jit(nt.empirical_ntk_fn(
               apply_fn, vmap_axes=0, implementation=1)),
           'ntkexp_structured': jax.jit(
               structured_ntk.structured_ntk_fn(apply_fn))}
    out = {k: np.asarray(f(x, None, params)) for k, f in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(3):
        for k, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(x, None, params))
            times[k].append(time.perf_counter() - start)
    row = {f'{k}_seconds': statistics.median(v) for k, v in times.items()}
    ref = out['jacobian_contraction']
    row.update(dtype=dtype, n=n, device=jax.devices()[0].device_kind,
               ratio=row['jacobian_contraction_seconds'] /
               row['ntkexp_structured_seconds'],
               rel_diff=float(np.abs(out['ntkexp_structured'] - ref).max() /
                              np.abs(ref).max()))
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=8)
    parser.add_argument('--out', default=None, help='CSV path')
    parser.add_argument('--one', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.n)))
        return
    rows = []
    for dtype in ('float32', 'float64'):
        rows.append(json.loads(script_rows.in_fresh_process(
            __file__, ['--one', dtype, '--n', str(args.n)])))
        print(rows[-1], flush=True)
    script_rows.write_rows(rows, __file__, argv, args.out)


if __name__ == '__main__':
    main()
