"""Fast convolutional kernels against plain neural-tangents, side by side.

For each architecture (the ``cnn_gap``, ``cnn_vec``, ``myrtle5`` and ``wrn``
networks of :mod:`ntkexp.bench`, and ``resnet_image``: ``model=resnet
layout=image``), times ``jax.jit(kernel_fn)(x1, x2, get='ntk')`` on one
``n x n`` block of random ``side x side x 3`` images for neural-tangents
(``fast_kernel=False``) and for :mod:`ntkexp.fastconv` (``fast_kernel=True``,
once per recursion variant named in ``--variants``, see :data:`VARIANTS`,
plus ``impl=pallas`` with ``--pallas``, once per step kind of
``--pallas-kinds`` and Triton ``--num-warps``), after a warm-up call (compilation
excluded), as the median of ``--repeats`` runs. Reports wall and process CPU
seconds, kernel entries per second, the speed-up, the largest relative
difference ``max |fast - nt| / max |nt|``, XLA's compiled size of the block,
and the projected time of the full 60,000-image CIFAR-10 kernel (upper
triangle, ``60000 * 60001 / 2`` entries) at the measured rate.

Usage::

    python -m ntkexp.fastconv.bench --arch myrtle5 --side 32 --n 2
    python -m ntkexp.fastconv.bench --arch cnn_gap,myrtle5 --side 32 --n 64 \\
        --out results/bench/fastconv_gpu.csv      # on a GPU
    python -m ntkexp.fastconv.bench --arch myrtle5 --side 32 --n 4 \\
        --variants default,materialize_off,session3
    python -m ntkexp.fastconv.bench --arch myrtle5,cnn_gap --side 32 --n 32 \\
        --pallas --pallas-kinds diagonal,diagonal_relu_in,diagonal_patches \\
        --num-warps 4,8
    python -m ntkexp.fastconv.bench --arch myrtle5,wrn --side 32 --n 4 \\
        --activation erf,gelu --dtype float64

``--activation`` builds the networks with other activations than ReLU (each
architecture once per activation; the Pallas steps are ReLU only).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import jax

from ntkexp import models
from ntkexp import records

ARCHITECTURES = {
    'cnn_gap': (models.cnn, dict(depth=3, width=64, readout='gap')),
    'cnn_vec': (models.cnn, dict(depth=3, width=64, readout='flatten')),
    'myrtle5': (models.myrtle, dict(depth=5, width=64)),
    'wrn': (models.wrn, dict(depth=10, width=16)),
    # The ResNTK papers' convolutional ResNet (model=resnet layout=image).
    'resnet_image': (models.resnet, dict(depth=4, width=64, layout='image')),
}

CIFAR10_ENTRIES = 60000 * 60001 / 2


def _device() -> str:
    """The device column: an accelerator's kind, or ``cpu:<processor>``."""
    device = jax.devices()[0]
    name = records.device_name(device)
    return name if device.platform != 'cpu' else f'cpu:{name}'


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall and process-CPU seconds of ``fn()`` after a warm-up call."""
    out = jax.block_until_ready(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        out = jax.block_until_ready(fn())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), out


def compiled_bytes(compiled: Any) -> float:
    """Arguments + outputs + temporaries of a compiled block (XLA)."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return float('nan')
    return float(analysis.argument_size_in_bytes +
                 analysis.output_size_in_bytes + analysis.temp_size_in_bytes)


# Recursion variants (module settings of ntkexp.fastconv.recursion, read when
# a kernel is traced) that ``--variants`` can time side by side.
VARIANTS = {
    'default': {},
    'materialize_on': dict(MATERIALIZE_PADDED=True),
    'materialize_off': dict(MATERIALIZE_PADDED=False),
    'plain_first_matmul': dict(BATCHED_FIRST_MATMUL=False),
    'materialize_conv': dict(MATERIALIZE_CONV_OUTPUT=True),
    'materialize_all': dict(MATERIALIZE_PADDED=True,
                            MATERIALIZE_CONV_OUTPUT=True),
    'full_self_covariance': dict(OFFSET_SELF_COVARIANCE=False),
    'pack_relu_off': dict(PACK_RELU_OUTPUTS=False),
    'pack_relu_on': dict(PACK_RELU_OUTPUTS=True),
    # CPU steps as large as on GPUs (as before the sixth session).
    'large_steps': dict(STEP_ENTRIES_CPU=2 ** 26),
    # Steps of 2**p pair-covariance entries on every backend (on a GPU, steps
    # whose arrays fit the L2 cache against fewer, larger launches).
    **{f'steps_2p{p}': dict(STEP_ENTRIES=2 ** p, STEP_ENTRIES_CPU=2 ** p)
       for p in (20, 22, 24, 27, 28)},
    # A convolution's NTK map as alpha S(Sigma) + beta S(Theta) (fifteenth
    # session; recursion.SEPARATE_NTK_SHIFT_SUM), the first layer's covariance
    # written with the next convolution's padding (PADDED_FIRST_LAYER), both.
    'separate_ntk': dict(SEPARATE_NTK_SHIFT_SUM=True),
    'padded_first': dict(PADDED_FIRST_LAYER=True),
    'separate_padded': dict(SEPARATE_NTK_SHIFT_SUM=True,
                            PADDED_FIRST_LAYER=True),
    # The recursion as it was in the third session (its GPU figures).
    'session3': dict(BATCHED_FIRST_MATMUL=False, MATERIALIZE_PADDED=False,
                     OFFSET_SELF_COVARIANCE=False, STEP_ENTRIES_CPU=2 ** 26),
}


@contextlib.contextmanager
def recursion_settings(variant: str):
    """Sets ``VARIANTS[variant]`` on :mod:`ntkexp.fastconv.recursion`."""
    from ntkexp.fastconv import recursion  # pylint: disable=g-import-not-at-top
    settings = VARIANTS[variant]
    before = {name: getattr(recursion, name) for name in settings}
    for name, value in settings.items():
        setattr(recursion, name, value)
    try:
        yield recursion
    finally:
        for name, value in before.items():
            setattr(recursion, name, value)


def bench(arch: str, side: int, n: int, repeats: int, dtype: str,
          skip_nt: bool = False, pallas: bool = False,
          num_warps: tuple[int, ...] = (),
          variants: tuple[str, ...] = ('default',),
          pallas_kinds: tuple[str, ...] = ('rows',),
          activation: str = 'relu',
          pallas_variants: tuple[str, ...] = ('default',),
          on_row: Optional[Callable[[dict[str, Any]], None]] = None
          ) -> list[dict[str, Any]]:
    """Rows of one architecture: neural-tangents, fastconv once per recursion
    variant (:data:`VARIANTS`), and Pallas once per step kind
    (:data:`ntkexp.fastconv.pallas.KINDS`), Triton ``num_warps`` (none
    given: each kind's own, :func:`ntkexp.fastconv.pallas.default_num_warps`)
    and recursion variant of ``pallas_variants``; the network built with
    ``activation``. ``on_row`` is called with each row as it is measured
    (so that a run cut short keeps what it measured)."""
    fn, kwargs = ARCHITECTURES[arch]
    kwargs = dict(kwargs, activation=activation)
    rng = np.random.RandomState(0)
    x1 = rng.randn(n, side, side, 3).astype(dtype)
    x2 = rng.randn(n, side, side, 3).astype(dtype)
    methods = [] if skip_nt else [('nt', None, 'default')]
    methods += [('fastconv' if v == 'default' else f'fastconv_{v}', None, v)
                for v in variants]
    if pallas:
        from ntkexp.fastconv import pallas as fc_pallas  # pylint: disable=g-import-not-at-top
        # 'fastconv_pallas_w4' is the rows kernel, as in earlier CSVs.
        methods += [('fastconv_pallas' + ('' if kind == 'rows' else f'_{kind}')
                     + f'_w{w}' + ('' if v == 'default' else f'_{v}'),
                     (kind, w), v)
                    for v in pallas_variants for kind in pallas_kinds
                    for w in num_warps or (fc_pallas.default_num_warps(kind),)]
    rows, ref, t_ref = [], None, None
    for method, pallas_step, variant in methods:
        with recursion_settings(variant) as recursion:
            _, _, kernel_fn = fn(**kwargs, fast_kernel=method != 'nt')
            if pallas_step is not None:
                kind, warps = pallas_step
                kernel_fn = fc_pallas.pallas_kernel_fn(
                    kernel_fn, interpret=False, kind=kind, num_warps=warps)
            materialized = (float('nan') if method == 'nt'
                            else recursion.materialize_padded())
            start = time.perf_counter()
            try:
                compiled = jax.jit(kernel_fn, static_argnames='get').lower(
                    x1, x2, get='ntk').compile()
                jax.block_until_ready(compiled(x1, x2))
                first = time.perf_counter() - start
                wall, cpu, out = timed(lambda: compiled(x1, x2), repeats)
            except Exception as error:  # pylint: disable=broad-except
                row = dict(arch=arch, method=method, n=n,
                           error=f'{type(error).__name__}: {error}'[:400])
                print(row, flush=True)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                continue
        out = np.asarray(out, np.float64)
        if ref is None and method == 'nt':
            ref, t_ref = out, wall
        row = dict(arch=arch, activation=activation, method=method,
                   input=f'{side}x{side}x3', n=n,
                   dtype=dtype, device=_device(),
                   matmul_precision=str(
                       jax.config.jax_default_matmul_precision),
                   variant='' if method == 'nt' else variant,
                   materialize_padded=materialized,
                   seconds=wall, cpu_seconds=cpu, first_call_seconds=first,
                   entries_per_s=n * n / wall,
                   speedup_vs_nt=(t_ref / wall) if t_ref else float('nan'),
                   rel_diff_vs_nt=(float(np.abs(out - ref).max() /
                                         np.abs(ref).max())
                                   if ref is not None else float('nan')),
                   compiled_bytes=compiled_bytes(compiled),
                   cifar10_hours=CIFAR10_ENTRIES / (n * n / wall) / 3600)
        rows.append(row)
        print(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                       for k, v in row.items()), flush=True)
        if on_row is not None:
            on_row(row)
    return rows


def main(argv=None) -> None:
    from ntkexp.fastconv import activations as fc_activations  # pylint: disable=g-import-not-at-top
    from ntkexp.fastconv import pallas as fc_pallas  # pylint: disable=g-import-not-at-top
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='cnn_gap,myrtle5')
    parser.add_argument('--side', type=int, default=32)
    parser.add_argument('--n', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--dtype', default='float32',
                        choices=('float32', 'float64'))
    parser.add_argument('--skip-nt', action='store_true')
    parser.add_argument('--pallas', action='store_true',
                        help='also time the Pallas kernel (GPU only)')
    parser.add_argument('--num-warps', default='',
                        help="Triton warps of the Pallas rows, e.g. 2,4,8 "
                             "(default: each kind's own, what fast_kernel="
                             'pallas_<kind> runs: 8 for the diagonal kinds, '
                             '4 for rows)')
    parser.add_argument('--pallas-kinds', default='rows',
                        help='Pallas steps to time with --pallas: '
                             + ','.join(fc_pallas.KINDS))
    parser.add_argument('--variants', default='default',
                        help='fastconv rows, one per recursion variant: '
                             + ','.join(VARIANTS))
    parser.add_argument('--pallas-variants', default='default',
                        help='recursion variants the Pallas rows run under, '
                             'e.g. default,padded_first (the diagonal step '
                             'then takes the padded first layer)')
    parser.add_argument('--activation', default='relu',
                        help='activations of the networks, e.g. relu,erf: '
                             + ','.join(fc_activations.ACTIVATIONS))
    parser.add_argument('--out', type=Path, default=None, help='CSV path')
    args = parser.parse_args(argv)

    def choices(flag: str, value: str, valid) -> list[str]:
        """``value`` split on commas, or one parser error naming the unknown
        names and the valid ones."""
        names = value.split(',')
        unknown = set(names) - set(valid)
        if unknown:
            parser.error(f'{flag}: unknown {sorted(unknown)}; choose from '
                         + ','.join(valid))
        return names

    activation_names = choices('--activation', args.activation,
                               fc_activations.ACTIVATIONS)
    if args.pallas and args.activation != 'relu':
        parser.error('--pallas times ReLU steps only; leave out --activation '
                     'or --pallas')
    pallas_kinds = tuple(choices('--pallas-kinds', args.pallas_kinds,
                                 fc_pallas.KINDS))
    variants = tuple(choices('--variants', args.variants, VARIANTS))
    pallas_variants = tuple(choices('--pallas-variants', args.pallas_variants,
                                    VARIANTS))
    if args.dtype == 'float64':
        jax.config.update('jax_enable_x64', True)
    command = 'python -m ntkexp.fastconv.bench ' + ' '.join(
        sys.argv[1:] if argv is None else argv)

    def save(row: Optional[dict[str, Any]] = None) -> None:
        # After every row, so a run cut short (gpu_check's step limits)
        # keeps the rows it measured.
        if row is not None:
            rows.append(row)
        if args.out is not None:
            import pandas as pd  # pylint: disable=g-import-not-at-top
            args.out.parent.mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame(rows)
            frame['command'] = command
            frame.to_csv(args.out, index=False)

    rows = []
    for arch, activation in itertools.product(args.arch.split(','),
                                              activation_names):
        bench(arch, args.side, args.n, args.repeats, args.dtype,
              args.skip_nt, args.pallas,
              tuple(int(w) for w in args.num_warps.split(',') if w),
              variants, pallas_kinds, activation, pallas_variants,
              on_row=save)
    if args.out is not None:
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
