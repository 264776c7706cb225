"""Automatic selection of the fast convolutional kernel.

:func:`with_fast_kernel` replaces the ``kernel_fn`` of a model's stax triple by
the recursion of :mod:`ntkexp.fastconv.recursion` when the architecture is
supported, and keeps neural-tangents' otherwise. Supported: networks of
SAME stride-1 square convolutions, an element-wise activation (every one of
the models': ``relu``, ``abs``, ``erf``, ``gelu``, ``sin``;
:mod:`ntkexp.fastconv.activations`), 2x2 average pools and a
``GlobalAvgPool`` or ``Flatten`` readout followed by ``Dense`` --
``model=cnn`` (both readouts, any depth and filter size) and ``model=myrtle``
(depth 5, 7, 10) -- in both parameterisations, with or without biases; and
``model=wrn`` and ``model=resnet layout=image readout=gap`` in the NTK
parameterisation (:mod:`ntkexp.fastconv.residual`). The Pallas steps
(``fast_kernel=pallas*``) compute ReLU networks only.

The replacement keeps neural-tangents' calling convention, so
:class:`ntkexp.kernels.KernelEngine`, ``nt.predict`` and ``nt.batch`` use it
unchanged:

* ``kernel_fn(x1, x2, get='ntk')`` returns an array;
* ``kernel_fn(x1, x2, get=('nngp', 'ntk'))`` returns a namedtuple ``Kernel``
  with those fields (in that order);
* ``x2=None`` means ``k(x1, x1)``; ``jax.jit(kernel_fn, static_argnames='get')``
  works.

Any other call -- ``get=None`` (the full ``Kernel`` object), other kernels
(``'cov1'``...), a ``Kernel`` object instead of inputs (stax composition),
extra keyword arguments (masking, ``channel_axis``...) -- goes to
neural-tangents' ``kernel_fn``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
from typing import Any, Callable, Iterator, Optional

import jax

from ntkexp import backend
from ntkexp.fastconv import activations, pallas, recursion
from ntkexp.fastconv.recursion import CONV, POOL, RELU, ConvNet
from ntkexp.fastconv.residual import ScaledResNet, WideResNet

# Values of the model option ``fast_kernel``: 'pallas' is 'true' with the
# Pallas convolution + ReLU (+ pool) steps of kind 'rows' (ntkexp.fastconv.pallas;
# exact on an H100 but no faster than XLA there, and slower to compile, so never
# chosen by 'auto'); 'pallas_<kind>' with another of pallas.KINDS (the diagonal
# steps: on an H100 none faster than XLA either, results/bench/session14/).
MODES = ('auto', 'true', 'false', 'pallas') + tuple(
    f'pallas_{kind}' for kind in pallas.KINDS if kind != 'rows')

#: The Pallas kind 'auto' takes on a GPU where the Pallas steps apply (pooled
#: plain ReLU CNNs: CNN-GAP, Myrtle; the XLA recursion elsewhere and for every
#: other network). None: XLA everywhere. It stays None until an H100 times a
#: kind faster than XLA (tools/gpu_check.sh, steps first_relu and gap_tail:
#: the candidates 'diagonal_first', 'diagonal_first_masked' and
#: 'diagonal_first_masked_tail' are projected at 10-11x, 12-13x and, for
#: CNN-GAP, 15-17x plain neural-tangents against XLA's 6.5-7.3x measured,
#: results/bench/session18/).
GPU_AUTO_PALLAS_KIND: Optional[str] = None


def parse_auto_choice(text: str) -> tuple[str, int]:
    """``'KIND:WARPS'`` (what ``python -m ntkexp.bench_targets FOLDER
    --choice`` prints) as ``(kind, warps)``.

    Raises:
        ValueError: an unknown kind, warps not a power of two from 1 to 32, or
            warps other than 4 for ``rows`` (its warps are its own); one line
            naming the choices.
    """
    kind, _, warps = text.partition(':')
    kinds = ', '.join(pallas.KINDS)
    if kind not in pallas.KINDS:
        raise ValueError(f'{text!r}: the Pallas kind must be one of {kinds} '
                         '(KIND:WARPS, e.g. diagonal_first_masked:8)')
    if not warps:
        return kind, pallas.default_num_warps(kind)
    if not warps.isdigit() or int(warps) not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f'{text!r}: WARPS must be 1, 2, 4, 8, 16 or 32 '
                         '(KIND:WARPS, e.g. diagonal_first_masked:8)')
    if kind == 'rows' and int(warps) != pallas.default_num_warps('rows'):
        raise ValueError(f"{text!r}: the 'rows' kind runs its own "
                         f"{pallas.default_num_warps('rows')} warps")
    return kind, int(warps)


@contextlib.contextmanager
def auto_choice(kind: str, warps: int) -> Iterator[None]:
    """Within the block, ``fast_kernel='auto'`` takes the Pallas ``kind`` on a
    GPU (:data:`GPU_AUTO_PALLAS_KIND`) and the diagonal kinds' steps run
    ``warps`` (:data:`ntkexp.fastconv.pallas.DIAGONAL_NUM_WARPS`): what a GPU
    run's ``bench_targets`` recommends, timed before it is committed."""
    global GPU_AUTO_PALLAS_KIND
    before = GPU_AUTO_PALLAS_KIND, pallas.DIAGONAL_NUM_WARPS
    GPU_AUTO_PALLAS_KIND = kind
    if kind != 'rows':
        pallas.DIAGONAL_NUM_WARPS = warps
    try:
        yield
    finally:
        GPU_AUTO_PALLAS_KIND, pallas.DIAGONAL_NUM_WARPS = before


def pallas_kind(mode: str) -> str:
    """The Pallas step kind (:data:`ntkexp.fastconv.pallas.KINDS`) of a
    ``fast_kernel`` mode ``'pallas'`` (``'rows'``) or ``'pallas_<kind>'``."""
    return 'rows' if mode == 'pallas' else mode[len('pallas_'):]


def auto_pallas_kind(net: Any) -> Optional[str]:
    """The Pallas kind ``fast_kernel='auto'`` runs ``net`` with:
    :data:`GPU_AUTO_PALLAS_KIND` when building for a GPU
    (:func:`ntkexp.backend.target_backend`) a pooled plain CNN with ReLU,
    otherwise None (the XLA recursion)."""
    if (GPU_AUTO_PALLAS_KIND is None or backend.target_backend() != 'gpu'
            or not isinstance(net, ConvNet) or not net.full_spatial
            or net.activation != 'relu'):
        return None
    return GPU_AUTO_PALLAS_KIND


def parse_mode(model: str, value: Any) -> str:
    """``fast_kernel`` as ``'auto'``, ``'true'`` or ``'false'``.

    Raises:
        ValueError: not a bool or one of :data:`MODES` (one line, the choices).
    """
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str) and value.lower() in MODES:
        return value.lower()
    raise ValueError(f"model '{model}': fast_kernel={value!r} is not supported; "
                     f"valid choices: {', '.join(MODES)}.")


def cnn_net(*, depth: int, W_std: float, b_std: Optional[float],
            activation: str, parameterization: str, width: int,
            filter_size: int, readout: str) -> tuple[Optional[ConvNet], str]:
    """The :class:`ConvNet` of :func:`ntkexp.models.cnn`, or why it is not one.

    Returns:
        ``(net, '')`` if supported, else ``(None, reason)``.
    """
    if activation not in activations.ACTIVATIONS:
        return None, f'activation={activation}'
    return ConvNet(layers=(CONV, RELU) * depth, readout=readout, W_std=W_std,
                   b_std=b_std, parameterization=parameterization,
                   width=width, filter_size=filter_size,
                   activation=activation), ''


def myrtle_net(*, stages: tuple[int, ...], W_std: float,
               b_std: Optional[float], activation: str,
               parameterization: str, width: int
               ) -> tuple[Optional[ConvNet], str]:
    """The :class:`ConvNet` of :func:`ntkexp.models.myrtle`, or why not.

    Args:
        stages: convolutions per stage (:data:`ntkexp.models.MYRTLE_STAGES`);
            a 2x2 average pool follows every stage but the last.

    Returns:
        ``(net, '')`` if supported, else ``(None, reason)``.
    """
    if activation not in activations.ACTIVATIONS:
        return None, f'activation={activation}'
    layers: tuple[str, ...] = ()
    for i, n_conv in enumerate(stages):
        layers += (CONV, RELU) * n_conv
        if i < len(stages) - 1:
            layers += (POOL,)
    return ConvNet(layers=layers, readout='gap', W_std=W_std, b_std=b_std,
                   parameterization=parameterization, width=width,
                   filter_size=3, activation=activation), ''


def wrn_net(*, blocks: tuple[tuple[int, bool], ...], W_std: float,
            b_std: Optional[float], activation: str, parameterization: str
            ) -> tuple[Optional[WideResNet], str]:
    """The :class:`WideResNet` of :func:`ntkexp.models.wrn`, or why not.

    Args:
        blocks: ``(stride, project)`` of each residual block.

    Returns:
        ``(net, '')`` if supported (NTK parameterisation), else ``(None,
        reason)``.
    """
    if activation not in activations.ACTIVATIONS:
        return None, f'activation={activation}'
    if parameterization != 'ntk':
        return None, f'parameterization={parameterization} (only ntk for wrn)'
    return WideResNet(blocks=tuple(blocks), W_std=W_std, b_std=b_std,
                      activation=activation), ''


def resnet_net(*, depth: int, alpha: float, W_std: float, V_std: float,
               b_std: Optional[float], activation: str, parameterization: str,
               layout: str, filter_size: int, readout: str,
               trunk_scale: float = 1.0
               ) -> tuple[Optional[ScaledResNet], str]:
    """The :class:`ScaledResNet` of :func:`ntkexp.models.resnet`, or why not.

    Returns:
        ``(net, '')`` for ``layout=image``, ``readout=gap`` in the NTK
        parameterisation, else ``(None, reason)``.
    """
    if layout != 'image':
        return None, f'layout={layout} (dense layers; only layout=image)'
    if readout != 'gap':
        return None, f'readout={readout} (only gap for resnet)'
    if activation not in activations.ACTIVATIONS:
        return None, f'activation={activation}'
    if parameterization != 'ntk':
        return None, (f'parameterization={parameterization} (only ntk for '
                      'resnet)')
    return ScaledResNet(depth=depth, alpha=alpha, W_std=W_std, V_std=V_std,
                        b_std=b_std, filter_size=filter_size,
                        activation=activation, trunk_scale=trunk_scale), ''


_NAMEDTUPLES: dict[tuple[str, ...], type] = {}


def _kernel_tuple(names: tuple[str, ...]) -> type:
    """neural-tangents' return type for ``get=names`` (a namedtuple ``Kernel``)."""
    if names not in _NAMEDTUPLES:
        _NAMEDTUPLES[names] = collections.namedtuple('Kernel', names)
    return _NAMEDTUPLES[names]


def _is_array(x: Any) -> bool:
    return hasattr(x, 'shape') and hasattr(x, 'dtype') and hasattr(x, 'ndim')


def wrap_kernel_fn(compute: Callable, fallback: Callable,
                   check: Optional[Callable[[tuple], None]] = None,
                   accepts: Callable[[Any, Any], bool] = lambda x1, x2: True
                   ) -> Callable:
    """A ``kernel_fn`` with neural-tangents' calling convention around
    ``compute(x1, x2, names) -> {name: array}`` (module docstring).

    Args:
        compute: the fast kernels of arrays ``x1``, ``x2`` (None: ``k(x1,
            x1)``) for ``names``, a tuple from ``('nngp', 'ntk')``.
        fallback: neural-tangents' ``kernel_fn`` of the same network, used for
            every other call, and for inputs ``accepts`` refuses.
        check: called with each input's shape first (the model's input check).
        accepts: whether ``compute`` takes these inputs.

    Returns:
        The kernel function, with attributes ``fastconv = True``,
        ``fallback`` and ``check`` (and those of ``fallback``).
    """

    @functools.wraps(fallback)
    def kernel_fn(x1_or_kernel, x2=None, get=None, **kwargs):
        if (kwargs or get is None or not _is_array(x1_or_kernel)
                or (x2 is not None and not _is_array(x2))):
            return fallback(x1_or_kernel, x2, get, **kwargs)
        names = (get,) if isinstance(get, str) else tuple(get)
        if not names or any(g not in recursion.KERNELS for g in names):
            return fallback(x1_or_kernel, x2, get, **kwargs)
        if check is not None:
            check(tuple(x1_or_kernel.shape))
            if x2 is not None:
                check(tuple(x2.shape))
        if not accepts(x1_or_kernel, x2):
            return fallback(x1_or_kernel, x2, get, **kwargs)
        out = compute(x1_or_kernel, x2, names)
        if isinstance(get, str):
            return out[get]
        return _kernel_tuple(names)(*(out[g] for g in names))

    kernel_fn.fastconv = True
    kernel_fn.fallback = fallback
    kernel_fn.check = check
    return kernel_fn


def fast_kernel_fn(net: ConvNet, fallback: Callable,
                   check: Optional[Callable[[tuple], None]] = None,
                   conv_relu: Optional[Callable] = None) -> Callable:
    """A ``kernel_fn`` computing ``net``'s kernels with the fast recursion.

    Args:
        net: the architecture.
        fallback: neural-tangents' ``kernel_fn`` of the same network, used for
            every call the fast path does not handle (module docstring).
        check: called with each input's shape first (the model's input check).
        conv_relu: optional fused convolution + ReLU step
            (:func:`ntkexp.fastconv.pallas.make_conv_relu`), used for
            ``k(x1, x2)`` blocks whose image size it supports.

    Returns:
        The kernel function (:func:`wrap_kernel_fn`); it also carries ``net``,
        ``impl`` (``'xla'`` or ``'pallas'``), ``pallas_kind`` and
        ``pallas_num_warps`` (``conv_relu``'s ``kind`` and ``num_warps``, None
        without) attributes.
    """

    def compute(x1, x2, names):
        step = None
        if conv_relu is not None and x2 is not None:
            if pallas.supported(net, *x1.shape[1:3],
                                on_gpu=jax.default_backend() == 'gpu'):
                step = conv_relu
        return recursion.kernel(net, x1, x2, names, conv_relu=step)

    def accepts(x1, x2):  # images, both of one shape
        return x1.ndim == 4 and (x2 is None or x2.shape[1:] == x1.shape[1:])

    kernel_fn = wrap_kernel_fn(compute, fallback, check, accepts)
    kernel_fn.net = net
    kernel_fn.impl = 'xla' if conv_relu is None else 'pallas'
    kernel_fn.pallas_kind = getattr(conv_relu, 'kind', None)
    kernel_fn.pallas_num_warps = getattr(conv_relu, 'num_warps', None)
    return kernel_fn


def with_fast_kernel(triple: tuple[Callable, Callable, Callable],
                     net: Optional[ConvNet], mode: Any, model: str,
                     reason: str = '',
                     check: Optional[Callable[[tuple], None]] = None
                     ) -> tuple[Callable, Callable, Callable]:
    """The model triple with the fast ``kernel_fn`` where selected.

    Args:
        triple: neural-tangents' ``(init_fn, apply_fn, kernel_fn)``.
        net: the architecture, or None if it is not supported.
        mode: the ``fast_kernel`` option: ``'auto'`` (fast if supported and
            pooled -- CNN-GAP, Myrtle, WRN; neural-tangents for CNN-VEC; on a
            GPU the Pallas steps of :data:`GPU_AUTO_PALLAS_KIND` where set),
            ``True`` (fast, or an error if not supported), ``'pallas'`` (as
            ``True``, with the Pallas step of kind ``rows``), ``'pallas_<kind>'``
            (with another kind of :data:`ntkexp.fastconv.pallas.KINDS`) or
            ``False``.
        model: model name for messages.
        reason: why ``net`` is None (for the error of ``fast_kernel=true``).
        check: input-shape check (see :func:`fast_kernel_fn`).

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: ``fast_kernel=true`` for an unsupported architecture,
            ``fast_kernel=pallas*`` for another activation than ReLU, or an
            invalid ``fast_kernel`` value.
    """
    mode = parse_mode(model, mode)
    if mode == 'false':
        return triple
    if mode == 'auto' and net is not None and not net.full_spatial:
        # CNN-VEC (Flatten, no pooling): neural-tangents already tracks only
        # the spatial diagonal, and is faster (measured: 7.6x on an H100,
        # 4.8x on a CPU; results/bench/session1, conf/model/cnn_vec.yaml).
        return triple
    gpu_kind = auto_pallas_kind(net) if mode == 'auto' else None
    if gpu_kind is not None:
        mode = f'pallas_{gpu_kind}'
    if net is None:
        if mode == 'true' or mode.startswith('pallas'):
            raise ValueError(
                f"model '{model}': fast_kernel={mode} does not support {reason}; "
                'use fast_kernel=auto (neural-tangents for this architecture).')
        return triple
    init_fn, apply_fn, kernel_fn = triple
    conv_relu = None
    if mode.startswith('pallas') and net.activation != 'relu':
        raise ValueError(
            f"model '{model}': fast_kernel={mode} fuses ReLU steps only, not "
            f'activation={net.activation}; use fast_kernel=true or auto (the XLA '
            'recursion, any activation).')
    if mode.startswith('pallas') and not (isinstance(net, recursion.ConvNet)
                                          and net.full_spatial):
        # pallas.supported refuses these at every call: the XLA recursion
        # would run under a 'pallas' label.
        raise ValueError(
            f"model '{model}': fast_kernel={mode} has Pallas steps for pooled "
            'plain CNNs only (CNN-GAP, Myrtle), not this '
            + ('CNN-VEC (readout=flatten)' if isinstance(net, recursion.ConvNet)
               else 'residual network')
            + '; use fast_kernel=true or auto (the XLA recursion).')
    if mode.startswith('pallas'):
        conv_relu = pallas.make_conv_relu(kind=pallas_kind(mode))
    return init_fn, apply_fn, fast_kernel_fn(net, kernel_fn, check, conv_relu)
