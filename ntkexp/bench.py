"""``make bench``: ntkexp against plain neural-tangents, side by side, as ratios.

Measured on whatever JAX devices are present, in one process:

* infinite-width NTK throughput (kernel entries per second) of FC, CNN-VEC,
  CNN-GAP, Myrtle-5, WRN and ResNet on 32x32x3 inputs, for plain
  neural-tangents (``jax.jit(kernel_fn)`` on the whole input, and ``nt.batch``
  with its defaults) and for ntkexp's block engine (memory-budgeted blocks,
  upper triangle only), with the largest relative difference between them;
  ``nt_jit_host`` is the jit call with its kernel copied to host memory, as
  the engine returns it. The fast kernels (``ntkexp.fastconv``) run in the
  engine as XLA programs (``ntkexp_fastconv_engine``), and where the default
  ``fast_kernel=auto`` computes something else (on a GPU, the Pallas steps of
  ``select.GPU_AUTO_PALLAS_KIND`` once it is set) that too
  (``ntkexp_auto_engine``; column ``fast_kernel``). Engine rows record the
  block size, the number of
  blocks, the block memory predicted by the engine's fit
  (``predicted_bytes``), XLA's compiled figure for that block
  (``compiled_bytes``) and the budget (``budget_bytes``);
* empirical NTK throughput of a WRN for each ``nt.NtkImplementation`` and
  ntkexp's own (``NTKEXP_STRUCTURED``,
  :func:`ntkexp.structured_ntk.structured_ntk_fn`), and the time of the
  backward passes every exact method needs (``COTANGENT_FLOOR``,
  :func:`cotangent_floor_fn`), whose ratio to Jacobian contraction bounds
  what any implementation can gain over it, and of those passes with weight
  gradients (``WEIGHT_GRADIENTS``, :func:`weight_gradients_fn`); on request
  (``--empirical-impl``) ntkexp's with its products on a GPU's tensor cores
  (``NTKEXP_STRUCTURED_TF32X3``, ``_BF16X6``, ``_BF16X9``), its network's
  convolutions there too (``NTKEXP_STRUCTURED_CONVS_TF32X3``, with the products
  as well ``NTKEXP_STRUCTURED_ALL_TF32X3``; ``COTANGENT_FLOOR_CONVS_TF32X3`` their
  floor), and the time of its factors alone
  (``NTKEXP_STRUCTURED_FACTORS``, :func:`structured_factors_fn`);
* finite-width training steps per second (full-batch gradient descent);
* peak device memory where the backend reports it
  (``device.memory_stats()['peak_bytes_in_use']``), else the compiled
  program's size from XLA's memory analysis.

Each row is timed after a warm-up call (compilation excluded), as the median of
``--repeats`` runs. The CSV goes to ``results/bench/bench_<device>.csv`` with the
device, package versions and sizes in every row.

Usage::

    python -m ntkexp.bench                # sizes for a laptop CPU
    python -m ntkexp.bench --size gpu     # sizes for one GPU
    python -m ntkexp.bench --size gpu --only infinite --arch myrtle5 cnn_gap \\
        --no-nt-engine --gpu-auto-pallas-kind diagonal_first_masked:8
    python -m ntkexp.bench --only infinite --arch fc resnet --n fc=4096
    python -m ntkexp.bench --only infinite --dtype float64   # as `ntkexp run`
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import jax
import jax.numpy as jnp
import neural_tangents as nt

from ntkexp import kernels
from ntkexp import models
from ntkexp import records
from ntkexp import structured_ntk
from ntkexp.fastconv import select

# (name, model function, kwargs) for the infinite-width rows.
ARCHITECTURES = {
    'fc': (models.fc, dict(depth=3, width=512)),
    'cnn_vec': (models.cnn, dict(depth=3, width=64, readout='flatten')),
    'cnn_gap': (models.cnn, dict(depth=3, width=64, readout='gap')),
    'myrtle5': (models.myrtle, dict(depth=5, width=64)),
    'wrn': (models.wrn, dict(depth=10, width=16)),
    'resnet': (models.resnet, dict(depth=4, width=64)),
    # 32 layers: neural-tangents' jitted kernel repeats the layer 32 times and
    # compiles in seconds to minutes (first_call_s, plan_s); the scanned dense
    # recursion (ntkexp.fastconv.dense) compiles one layer.
    'fc_deep': (models.fc, dict(depth=32, width=512)),
}

# Architectures with a fast path (ntkexp.fastconv; fc and the dense resnet:
# ntkexp.fastconv.dense), benchmarked with and without.
FAST_ARCHS = ('fc', 'cnn_vec', 'cnn_gap', 'myrtle5', 'wrn', 'resnet', 'fc_deep')

# Inputs per architecture: (n for the kernel, block for nt.batch).
SIZES = {
    'cpu': {'fc': 512, 'fc_deep': 512, 'cnn_vec': 8, 'cnn_gap': 8, 'myrtle5': 4, 'wrn': 4,
            'resnet': 8, 'image': 32, 'empirical_n': 4, 'wrn_k': 1,
            'train_n': 128},
    'gpu': {'fc': 16384, 'fc_deep': 16384, 'cnn_vec': 256, 'cnn_gap': 16, 'myrtle5': 16,
            'wrn': 16, 'resnet': 256, 'image': 32, 'empirical_n': 16,
            'wrn_k': 4, 'train_n': 1024},
}


def _block_until_ready(out: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda a: a.block_until_ready() if hasattr(a, 'block_until_ready')
        else a, out)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` after one warm-up call, and its output."""
    seconds, out, _ = timed_first(fn, repeats)
    return seconds, out


def timed_first(fn: Callable[[], Any], repeats: int) -> tuple[float, Any, float]:
    """:func:`timed`, and the warm-up call's own time (with its compile)."""
    start = time.perf_counter()
    out = _block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = _block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), out, first


def peak_bytes() -> float:
    """Peak device memory in use, or NaN where the backend does not report it."""
    stats = jax.local_devices()[0].memory_stats()
    if not stats or 'peak_bytes_in_use' not in stats:
        return float('nan')
    return float(stats['peak_bytes_in_use'])


def _images(n: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randn(n, side, side, 3).astype(np.float32)


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def bench_infinite(arch: str, n: int, side: int, memory_gb: float,
                   repeats: int, dtype: str = 'float32',
                   nt_engine: bool = True) -> list[dict[str, Any]]:
    """NTK entries/s: plain nt (jit, nt.batch) vs the ntkexp block engine,
    on ``dtype`` images (``float64`` needs ``jax_enable_x64``; it is what
    ``ntkexp run`` computes kernels in, ``precision: float64``).
    ``nt_engine=False`` leaves out ``nt.batch`` and neural-tangents' kernel
    in the engine, whose block sizing compiles that kernel several times
    (minutes for a pooled CNN on a GPU): the fast kernels against one jit
    call of neural-tangents' alone."""
    fn, kwargs = ARCHITECTURES[arch]
    fast = arch in FAST_ARCHS
    # Plain neural-tangents: the stax kernel_fn, without ntkexp's fast path.
    _, _, kernel_fn = fn(**kwargs, **({'fast_kernel': False} if fast else {}))
    x = _images(n, side).astype(dtype)
    rows = []
    jitted = jax.jit(kernel_fn, static_argnames='get')
    t_jit, ref, first = timed_first(lambda: jitted(x, x, get='ntk'), repeats)
    ref = np.asarray(ref)
    rows.append(dict(method='nt_jit', seconds=t_jit, rel_diff=0.0,
                     block=n, peak_bytes=peak_bytes(), first_call_s=first))
    # The same, with the kernel copied to host memory as the engine returns it.
    t_host, _ = timed(lambda: np.asarray(jitted(x, x, get='ntk')), repeats)
    rows.append(dict(method='nt_jit_host', seconds=t_host, rel_diff=0.0,
                     block=n, peak_bytes=peak_bytes()))
    if nt_engine:
        rows += _nt_engine_rows(kernel_fn, arch, x, ref, memory_gb, repeats)
    if fast:
        # ntkexp's fused convolutional recursion (ntkexp.fastconv) in the
        # engine, as XLA programs (fast_kernel=true); then what `ntkexp run`
        # computes by default (fast_kernel=auto) where that is not the same
        # program: on a GPU once select.GPU_AUTO_PALLAS_KIND is set, the
        # Pallas steps of that kind.
        fast_fns = [('ntkexp_fastconv_engine', '_fast',
                     fn(**kwargs, fast_kernel=True)[2])]
        auto_fn = fn(**kwargs, fast_kernel='auto')[2]
        if getattr(auto_fn, 'impl', None) == 'pallas':
            fast_fns.append(('ntkexp_auto_engine', '_auto', auto_fn))
        for method, suffix, fast_fn in fast_fns:
            engine, plan, plan_s = _engine(fast_fn, arch + suffix, x, memory_gb)
            rows.append(dict(_engine_row(method, engine, plan, plan_s, x, ref,
                                         repeats),
                             **_fast_kernel_columns(fast_fn)))
    for row in rows:
        row.update(benchmark='infinite_ntk', arch=arch, n=n,
                   input=f'{side}x{side}x3', dtype=dtype,
                   entries_per_s=n * n / row['seconds'],
                   ratio_vs_nt_jit=t_jit / row['seconds'],
                   ratio_vs_nt_jit_host=t_host / row['seconds'])
    return rows


def _engine(kernel_fn: Any, name: str, x: np.ndarray, memory_gb: float
            ) -> tuple[kernels.KernelEngine, kernels.BlockPlan, float]:
    """ntkexp's block engine for ``kernel_fn``, its plan for ``x`` and the
    seconds the plan took (the block sizing, which compiles a few block
    sizes): blocks from the memory budget alone (``block_seconds=None``), the
    layouts this benchmark compares, not cut further for progress
    reporting."""
    engine = kernels.KernelEngine(kernel_fn, name, get=('ntk',),
                                  memory_gb=memory_gb, cache_dir=None,
                                  progress=False, block_seconds=None)
    start = time.perf_counter()
    plan, _ = engine.plan(x, None)
    return engine, plan, time.perf_counter() - start


def _engine_row(method: str, engine: kernels.KernelEngine,
                plan: kernels.BlockPlan, plan_s: float, x: np.ndarray,
                ref: np.ndarray, repeats: int) -> dict[str, Any]:
    """The row of ``engine`` computing ``k(x, x)``: its time, agreement with
    ``ref`` and block choice; ``plan_s`` is the block sizing (compiles of a
    few block sizes, from :func:`_engine`), ``first_call_s`` the first call
    (compiles the block)."""
    seconds, out, first = timed_first(lambda: engine(x)['ntk'], repeats)
    return dict(method=method, seconds=seconds, rel_diff=_rel_diff(out, ref),
                block=plan.block, peak_bytes=peak_bytes(),
                plan_s=plan_s, first_call_s=first, **_choice_columns(engine, plan))


def _nt_engine_rows(kernel_fn: Any, arch: str, x: np.ndarray, ref: np.ndarray,
                    memory_gb: float, repeats: int) -> list[dict[str, Any]]:
    """:func:`bench_infinite`'s rows of neural-tangents' ``kernel_fn`` in
    ``nt.batch`` and in ntkexp's block engine, at the engine's block size."""
    engine, plan, plan_s = _engine(kernel_fn, arch, x, memory_gb)
    batched = nt.batch(kernel_fn, batch_size=plan.block)
    t_batch, out = timed(lambda: batched(x, x, 'ntk'), repeats)
    return [dict(method='nt_batch', seconds=t_batch,
                 rel_diff=_rel_diff(out, ref), block=plan.block,
                 peak_bytes=peak_bytes()),
            _engine_row('ntkexp_engine', engine, plan, plan_s, x, ref, repeats)]


def _fast_kernel_columns(kernel_fn: Any) -> dict[str, Any]:
    """Which fast kernel ``kernel_fn`` is: ``fast_kernel`` (``'true'``, the
    XLA recursion, or ``'pallas_<kind>'``) and the warps its Pallas steps
    were built with."""
    kind = getattr(kernel_fn, 'pallas_kind', None)
    if kind is None:
        return dict(fast_kernel='true')
    return dict(fast_kernel=f'pallas_{kind}',
                pallas_num_warps=kernel_fn.pallas_num_warps)


def _choice_columns(engine: kernels.KernelEngine,
                    plan: kernels.BlockPlan) -> dict[str, Any]:
    """The engine's block choice: predicted vs XLA-measured bytes, budget."""
    choice = engine.last_choice
    cols = dict(blocks=len(plan.blocks()))
    if choice is not None:
        cols.update(predicted_bytes=choice.predicted_bytes,
                    compiled_bytes=choice.measured_bytes,
                    budget_bytes=choice.budget_bytes,
                    choice_compiles=len(choice.measurements),
                    choice_seconds=choice.seconds)
    return cols


# Not an nt.NtkImplementation: the time of the work every exact reverse-mode
# method must do (cotangent_floor_fn), so t(JACOBIAN_CONTRACTION) / t(floor) is
# the largest speed-up over Jacobian contraction any of them can reach.
COTANGENT_FLOOR = 'COTANGENT_FLOOR'
# Nor this: the floor plus the weight gradients of every logit, summed over
# the images (weight_gradients_fn), the FLOPs of all per-image weight gradients.
WEIGHT_GRADIENTS = 'WEIGHT_GRADIENTS'
# ntkexp's own: per-image weight gradients or position pairs from each
# layer's inputs and output cotangents (ntkexp.structured_ntk).
NTKEXP_STRUCTURED = 'NTKEXP_STRUCTURED'
# ntkexp's with each convolution's term one way (not in the default run):
# per-image weight gradients or pairs of positions; NTKEXP_STRUCTURED picks per
# layer by structured_ntk.prefer_position_pairs' count, these test that choice.
NTKEXP_CONTRACTIONS = {NTKEXP_STRUCTURED: 'auto',
                       NTKEXP_STRUCTURED + '_GRADIENTS': 'gradients',
                       NTKEXP_STRUCTURED + '_PAIRS': 'pairs'}
# ntkexp's with the terms' products as several tensor-core products (GPUs;
# structured_ntk.PRODUCTS), the network's own passes as configured.
NTKEXP_PRODUCTS = {NTKEXP_STRUCTURED + '_' + name.upper(): name
                   for name in ('tf32x3', 'bf16x6', 'bf16x9')}
# ntkexp's with the network's own convolutions (forward and backward) as three
# TF32 tensor-core products each (GPUs; structured_ntk.CONVOLUTIONS), the
# terms' products as configured or (_ALL_) as three TF32 products too.
NTKEXP_CONVOLUTIONS = {NTKEXP_STRUCTURED + '_CONVS_TF32X3': 'default',
                       NTKEXP_STRUCTURED + '_ALL_TF32X3': 'tf32x3'}
EMPIRICAL_METHODS = ('JACOBIAN_CONTRACTION', 'NTK_VECTOR_PRODUCTS',
                     'STRUCTURED_DERIVATIVES', NTKEXP_STRUCTURED,
                     COTANGENT_FLOOR, WEIGHT_GRADIENTS)


def cotangent_floor_fn(apply_fn: Callable, convolutions: str = 'default'
                       ) -> Callable:
    """``f(x, params)``: the forward pass and one backward pass per logit.

    The traced empirical NTK ``sum_k <df_k(x)/dW, df_k(x')/dW>`` of a layer
    ``W`` needs, for every image and logit ``k``, the cotangent ``df_k/dy`` of
    the layer's output ``y`` (Jacot et al. 2018, Eq. 2; the structured
    derivatives of Novak et al. 2022, Sec. 3, contract exactly these with the
    layer's inputs). Getting them for every layer is one backward pass per
    image and logit through the whole network, without the weight-gradient
    products, which is what this function computes (the vector-Jacobian
    product with respect to the input images, ``k`` cotangents vmapped).
    Jacobian contraction does this plus the weight gradients and the
    contraction; structured derivatives do this plus their contractions; so
    neither can take less time (up to the one transposed first convolution to
    the 3 input channels included here, a small share of the backward pass).
    ``convolutions='tf32x3'`` (``COTANGENT_FLOOR_CONVS_TF32X3``) takes the
    network's convolutions as ``structured_ntk_fn(convolutions='tf32x3')``
    does: the floor of that variant.
    """
    def floor(x, params):
        network = structured_ntk.with_convolutions(
            lambda images: apply_fn(params, images), convolutions)
        return structured_ntk.backward_per_logit(network, (x,))[0]
    return floor


def weight_gradients_fn(apply_fn: Callable) -> Callable:
    """``f(x, params)``: one backward pass per logit with weight gradients.

    The gradients of each logit with respect to the parameters, summed over
    the images of ``x`` (``k`` cotangents vmapped, the batch in each). Summing
    over images costs the same multiply-adds as keeping one gradient per
    image, which Jacobian contraction does (a convolution's weight gradient
    is ``sum_p patch_p g_p^T`` either way, over the positions of one image or
    of all), in XLA's batched convolutions; so this time, plus a contraction,
    is what an implementation that forms per-image weight gradients at full
    speed would take. (Structured derivatives can skip a layer's weight
    gradients by contracting position pairs instead, which costs
    ``(H W)^2`` per image pair: cheaper only for layers with few positions.)
    """
    def gradients(x, params):
        return structured_ntk.backward_per_logit(apply_fn, (params, x))[0]
    return gradients


BOUNDS = {COTANGENT_FLOOR: cotangent_floor_fn,
          COTANGENT_FLOOR + '_CONVS_TF32X3': functools.partial(
              cotangent_floor_fn, convolutions='tf32x3'),
          WEIGHT_GRADIENTS: weight_gradients_fn}


def structured_factors_fn(apply_fn: Callable) -> Callable:
    """``f(x, params)``: the part of ntkexp's structured NTK before its
    contractions (:func:`structured_ntk.layer_factors`: the forward pass with
    the layer taps, one backward pass per logit, the patches and cotangents).

    Its time against :data:`COTANGENT_FLOOR`'s is the taps' overhead; against
    ``NTKEXP_STRUCTURED``'s, what the weight gradients and contractions cost.
    """
    def factors(x, params):
        terms, _ = structured_ntk.layer_factors(apply_fn, x, params)
        return [f for _, f in terms]
    return factors


# Parts of NTKEXP_STRUCTURED, timed like the bounds (no kernel to compare).
PARTS = {NTKEXP_STRUCTURED + '_FACTORS': structured_factors_fn}
TIMED_ONLY = {**BOUNDS, **PARTS}


#: Every name ``--empirical-impl`` takes: neural-tangents' implementations,
#: ntkexp's structured NTK and its variants, the bounds and parts.
EMPIRICAL_CHOICES = ([i.name for i in nt.NtkImplementation]
                     + list(NTKEXP_CONTRACTIONS) + list(NTKEXP_PRODUCTS)
                     + list(NTKEXP_CONVOLUTIONS) + list(TIMED_ONLY))


def empirical_wrn(n: int, side: int, wrn_k: int
                  ) -> tuple[Callable, np.ndarray, Any]:
    """The empirical NTK benchmark's WRN-10-``wrn_k`` (10 logits), its ``n``
    random ``side x side x 3`` images and its parameters."""
    init_fn, apply_fn, _ = models.wrn(depth=10, width=16 * wrn_k, out_dim=10)
    x = _images(n, side)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    return apply_fn, x, params


def empirical_method_fn(name: str, apply_fn: Callable
                        ) -> tuple[Callable, bool]:
    """``(f(x, params), is_kernel)`` for an :data:`EMPIRICAL_CHOICES` name:
    the kernel ``k(x, x)`` of an implementation, or (``is_kernel`` False) the
    function a bound or part times."""
    if name in TIMED_ONLY:
        return TIMED_ONLY[name](apply_fn), False
    if name in NTKEXP_CONVOLUTIONS:
        ntk_fn = structured_ntk.structured_ntk_fn(
            apply_fn, products=NTKEXP_CONVOLUTIONS[name],
            convolutions='tf32x3')
    elif name in NTKEXP_CONTRACTIONS or name in NTKEXP_PRODUCTS:
        ntk_fn = structured_ntk.structured_ntk_fn(
            apply_fn, conv_contraction=NTKEXP_CONTRACTIONS.get(name, 'auto'),
            products=NTKEXP_PRODUCTS.get(name, 'default'))
    else:
        ntk_fn = nt.empirical_ntk_fn(
            apply_fn, implementation=nt.NtkImplementation[name], vmap_axes=0)
    return (lambda x, params: ntk_fn(x, None, params)), True


def bench_empirical(n: int, side: int, wrn_k: int, repeats: int,
                    implementations: Optional[Sequence[str]] = None
                    ) -> list[dict[str, Any]]:
    """Empirical NTK entries/s of a WRN for each ``nt.NtkImplementation``
    (or those named in ``implementations``; the first is the reference), and
    the two bounds on any implementation (:data:`BOUNDS`: the time of
    :func:`cotangent_floor_fn` and of :func:`weight_gradients_fn`); names in
    :data:`PARTS` time a part of ntkexp's structured NTK."""
    apply_fn, x, params = empirical_wrn(n, side, wrn_k)
    rows, reference, t_ref = [], None, None
    for name in implementations or EMPIRICAL_METHODS:
        row = dict(benchmark='empirical_ntk', arch=f'wrn-10-{wrn_k}', n=n,
                   input=f'{side}x{side}x3', method=name,
                   n_params=models.count_params(params))
        try:
            fn, is_kernel = empirical_method_fn(name, apply_fn)
            fn = jax.jit(fn)
            if not is_kernel:
                seconds, _ = timed(lambda: fn(x, params), repeats)
                row.update(seconds=seconds, entries_per_s=n * n / seconds,
                           peak_bytes=peak_bytes())
                if t_ref is not None:
                    row['ratio_vs_jacobian_contraction'] = t_ref / seconds
                rows.append(row)
                continue
            seconds, out = timed(lambda: fn(x, params), repeats)
            out = np.asarray(out)
            if reference is None:
                reference, t_ref = out, seconds
            row.update(seconds=seconds, entries_per_s=n * n / seconds,
                       rel_diff=_rel_diff(out, reference),
                       ratio_vs_jacobian_contraction=t_ref / seconds,
                       peak_bytes=peak_bytes())
        except Exception as error:  # pylint: disable=broad-except
            row.update(error=f'{type(error).__name__}: {error}'[:300])
        rows.append(row)
    return rows


def bench_training(n: int, side: int, repeats: int) -> list[dict[str, Any]]:
    """Full-batch gradient-descent steps per second for FC and WRN."""
    rows = []
    for arch, (fn, kwargs) in (('fc', ARCHITECTURES['fc']),
                               ('wrn', ARCHITECTURES['wrn'])):
        init_fn, apply_fn, _ = fn(out_dim=10, **kwargs)
        x = jnp.asarray(_images(n, side))
        y = jax.nn.one_hot(jnp.arange(n) % 10, 10)
        _, params = init_fn(jax.random.PRNGKey(0), x.shape)

        @jax.jit
        def step(p):
            loss = lambda q: 0.5 * jnp.mean((apply_fn(q, x) - y) ** 2)
            grads = jax.grad(loss)(p)
            return jax.tree_util.tree_map(lambda a, g: a - 0.1 * g, p, grads)

        seconds, _ = timed(lambda: step(params), repeats)
        rows.append(dict(benchmark='training', arch=arch, n=n,
                         input=f'{side}x{side}x3', method='jit_gd_step',
                         seconds=seconds, steps_per_s=1 / seconds,
                         peak_bytes=peak_bytes()))
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Runs every benchmark and writes the CSV (see module docstring)."""
    parser = _argument_parser()
    args = parser.parse_args(argv)
    choice = contextlib.nullcontext
    if args.gpu_auto_pallas_kind:
        try:
            kind, warps = select.parse_auto_choice(args.gpu_auto_pallas_kind)
        except ValueError as error:
            parser.error(f'--gpu-auto-pallas-kind {error}')
        choice = functools.partial(select.auto_choice, kind, warps)
    device = jax.local_devices()[0]
    size = args.size or ('gpu' if device.platform == 'gpu' else 'cpu')
    sizes = _problem_sizes(parser, size, args.n)
    memory_gb = args.memory_gb or (16.0 if device.platform == 'gpu' else 2.0)
    only = set(args.only or ['infinite', 'empirical', 'training'])
    if args.dtype == 'float64':
        if only != {'infinite'}:
            parser.error('--dtype float64 times the infinite-width kernels '
                         'only: add --only infinite')
        jax.config.update('jax_enable_x64', True)
    rows: list[dict[str, Any]] = []
    meta = dict(device=f'{device.platform}:{records.device_name(device)}',
                device_count=len(jax.local_devices()), size=size,
                matmul_precision=str(jax.config.jax_default_matmul_precision),
                memory_gb=memory_gb,
                date=datetime.date.today().isoformat(),
                command='python -m ntkexp.bench ' + ' '.join(
                    sys.argv[1:] if argv is None else argv),
                **{f'v_{k}': v for k, v in records.versions().items()})
    args.out.mkdir(parents=True, exist_ok=True)
    kind = device.device_kind.replace(' ', '_').replace('/', '_')
    suffix = '' if args.dtype == 'float32' else f'_{args.dtype}'
    path = args.out / f'bench_{device.platform}_{kind}{suffix}.csv'

    def save() -> pd.DataFrame:
        # Written after every benchmark: a run cut short keeps its rows.
        frame = pd.DataFrame(rows)
        for key, value in meta.items():
            frame[key] = value
        frame.to_csv(path, index=False)
        return frame

    if 'infinite' in only:
        for arch in args.arch or ARCHITECTURES:
            with choice():
                rows += bench_infinite(arch, sizes[arch], sizes['image'],
                                       memory_gb, args.repeats, args.dtype,
                                       nt_engine=not args.no_nt_engine)
            save()
            print(f'  infinite {arch} done', flush=True)
    if 'training' in only:
        rows += bench_training(sizes['train_n'], sizes['image'], args.repeats)
        save()
    if 'empirical' in only:
        rows += bench_empirical(sizes['empirical_n'], sizes['image'],
                                sizes['wrn_k'], args.repeats,
                                args.empirical_impl)
    frame = save()
    print(f"device: {meta['device']}  size: {size}  memory_gb: {memory_gb}")
    print(_table(frame))
    print(f'written: {path}')
    return frame


def _argument_parser() -> argparse.ArgumentParser:
    """``python -m ntkexp.bench``'s options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', choices=sorted(SIZES), default=None,
                        help='problem sizes (default: gpu on a GPU, else cpu)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--memory-gb', type=float, default=None,
                        help='block memory budget (default: 2 on CPU, 16 on GPU)')
    parser.add_argument('--out', type=Path, default=Path('results/bench'))
    parser.add_argument('--only', nargs='*', default=None,
                        help='subset: infinite empirical training')
    parser.add_argument('--arch', nargs='*', default=None,
                        choices=sorted(ARCHITECTURES),
                        help='infinite-width architectures (default: all)')
    parser.add_argument('--empirical-impl', nargs='*', default=None,
                        choices=EMPIRICAL_CHOICES,
                        help='empirical NTK implementations and bounds '
                        '(default: ' + ' '.join(EMPIRICAL_METHODS) +
                        '; ratios are to the first)')
    parser.add_argument('--dtype', choices=('float32', 'float64'),
                        default='float32',
                        help='precision of the infinite-width kernels (float64: '
                        "what `ntkexp run` uses; on a CPU, neural-tangents' "
                        'float32 kernels are slower than its float64 ones, '
                        'results/bench/session7/)')
    parser.add_argument('--n', nargs='*', default=[], metavar='ARCH=N',
                        help='override the inputs of an architecture, e.g. '
                        'fc=16384')
    parser.add_argument('--gpu-auto-pallas-kind', default=None,
                        metavar='KIND[:WARPS]',
                        help='time fast_kernel=auto as if '
                        'select.GPU_AUTO_PALLAS_KIND were KIND and '
                        'pallas.DIAGONAL_NUM_WARPS WARPS (what `python -m '
                        'ntkexp.bench_targets FOLDER --choice` prints): the '
                        'row ntkexp_auto_engine, on a GPU')
    parser.add_argument('--no-nt-engine', action='store_true',
                        help="leave out nt.batch and neural-tangents' kernel "
                        'in the engine (their block sizing compiles it '
                        'several times): the fast kernels against one jit '
                        'call of neural-tangents alone')
    return parser


def _problem_sizes(parser: argparse.ArgumentParser, size: str,
                   overrides: list[str]) -> dict[str, int]:
    """:data:`SIZES` of ``size`` with the ``--n ARCH=N`` overrides."""
    sizes = dict(SIZES[size])
    for item in overrides:
        arch, _, value = item.partition('=')
        if arch not in sizes or not value.isdigit():
            parser.error(f'--n {item}: expected ARCH=N with ARCH one of '
                         f'{sorted(sizes)}')
        sizes[arch] = int(value)
    return sizes


def _table(frame: pd.DataFrame) -> str:
    """The printed table: the columns of ``frame`` a reader compares."""
    shown = [c for c in ('benchmark', 'arch', 'n', 'method', 'entries_per_s',
                         'steps_per_s', 'ratio_vs_nt_jit',
                         'ratio_vs_nt_jit_host',
                         'ratio_vs_jacobian_contraction', 'rel_diff',
                         'first_call_s', 'plan_s', 'block',
                         'blocks', 'predicted_bytes', 'compiled_bytes',
                         'error') if c in frame.columns]
    return frame[shown].to_string(index=False, float_format=lambda v: f'{v:.4g}')


if __name__ == '__main__':
    main()
