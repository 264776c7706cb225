"""Input-shape checks for the models of :mod:`ntkexp.models`.

Datasets give images as ``(N, H, W, C)`` arrays (NHWC, e.g. sklearn digits is
8x8x1) or vectors as ``(N, d)``. Fully connected models (``fc``, flat
``resnet``) start with ``stax.Flatten()`` and accept both; convolutional ones
(``cnn``, ``myrtle``, ``wrn``, image ``resnet``) need images. A mismatch is
reported by :func:`check_input` as a one-line ``ValueError`` that names the fix.

:func:`with_input_check` wraps a neural-tangents triple so that ``init_fn``,
``apply_fn`` and ``kernel_fn`` run :func:`check_input` first. The wrappers keep
the original call signatures (``functools.wraps`` copies ``__signature__`` and
the ``input_req`` attribute that ``nt.batch`` reads), so ``nt.batch``,
``nt.empirical_ntk_fn``, ``nt.monte_carlo_kernel_fn``, ``nt.linearize``,
``nt.predict`` and ``jax.jit(kernel_fn, static_argnames='get')`` work unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from numbers import Integral
from typing import Any, Sequence

# Which inputs each architecture accepts: 'any' = (N, d) vectors or
# (N, H, W, C) images (flattened first), 'image' = (N, H, W, C) only.
LAYOUTS: dict[str, str] = {
    'fc': 'any',
    'cnn': 'image',
    'myrtle': 'image',
    'wrn': 'image',
    'resnet': 'any',  # the default layout='flat'; layout='image' needs images
}

# Smallest spatial size (H and W) each image model can take.
_MIN_SPATIAL: dict[str, int] = {'myrtle': 4}


def _model_name(model: Any) -> str:
    """The architecture name of a config, a name, or a wrapped model function."""
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping) or hasattr(model, 'get'):
        target = model.get('_target_') or ''
        name = model.get('name') or str(target).rsplit('.', 1)[-1]
        return str(name)
    name = getattr(model, 'model_name', None)
    if name is not None:
        return name
    raise ValueError(f'cannot tell the architecture of {model!r}; pass its name '
                     f"(one of {', '.join(LAYOUTS)}) or its config.")


def input_layout(model: Any) -> str:
    """The input layout a model accepts: ``'flat'``, ``'image'`` or ``'any'``.

    Args:
        model: a model name (``'fc'``, ``'cnn'``, ``'myrtle'``, ``'wrn'``,
            ``'resnet'``), a model config (mapping / DictConfig with
            ``_target_``, e.g. ``cfg.model``), or a function of a triple built
            by :mod:`ntkexp.models` (it carries ``input_layout``).

    Returns:
        ``'image'`` if the model needs ``(N, H, W, C)`` inputs, ``'any'`` if it
        takes vectors ``(N, d)`` or images (flattened). No current model is
        ``'flat'``-only; the value is reserved for ones that would be.

    Raises:
        ValueError: unknown model name.
    """
    layout = getattr(model, 'input_layout', None)
    if isinstance(layout, str):
        return layout
    name = _model_name(model)
    if name not in LAYOUTS:
        raise ValueError(f'unknown model {name!r}; valid choices: '
                         f"{', '.join(LAYOUTS)}.")
    if not isinstance(model, str) and (isinstance(model, Mapping)
                                       or hasattr(model, 'get')):
        if name == 'resnet' and str(model.get('layout', 'flat')) == 'image':
            return 'image'
    return LAYOUTS[name]


def check_input(model: Any, x_shape: Sequence[int]) -> None:
    """Raises a one-line ``ValueError`` if ``model`` cannot take ``x_shape``.

    Args:
        model: a model name, a model config (``cfg.model``), or a function of a
            triple built by :mod:`ntkexp.models`.
        x_shape: shape of a batch of inputs, batch axis first (``-1`` allowed
            for the batch size, as in ``init_fn(rng, (-1, 8, 8, 1))``).

    Raises:
        ValueError: wrong rank for the model (or images too small for it).
    """
    shape = tuple(int(s) for s in x_shape)
    name = _model_name(model)
    layout = input_layout(model)
    if layout == 'image':
        if len(shape) != 4:
            alternative = 'model.layout=flat' if name == 'resnet' else 'model=fc'
            raise ValueError(
                f"model '{name}' needs image inputs (N, H, W, C) but got shape "
                f'{shape}; use an image dataset such as dataset=digits (with '
                f'dataset.flatten=false) or {alternative}.')
        min_hw = _MIN_SPATIAL.get(name, 1)
        if min(shape[1:3]) < min_hw:
            raise ValueError(
                f"model '{name}' needs images of at least {min_hw}x{min_hw} "
                f'pixels but got shape {shape}; use larger images or model=cnn.')
    elif layout == 'flat':
        if len(shape) != 2:
            raise ValueError(
                f"model '{name}' needs vector inputs (N, d) but got shape "
                f'{shape}; flatten the inputs or use model=cnn.')
    elif len(shape) < 2:
        raise ValueError(
            f"model '{name}' needs a batch of inputs, (N, d) or (N, H, W, C), "
            f'but got shape {shape}; add a leading batch axis.')


def validate_input(model: Any, x: Any) -> None:
    """:func:`check_input` on an array: ``validate_input(cfg.model, x_train)``.

    Raises:
        ValueError: ``model`` cannot take inputs shaped like ``x``.
    """
    check_input(model, x.shape)


def _shape_of(x: Any):
    """The shape of an array-like input, or None for kernels / trees / None."""
    shape = getattr(x, 'shape', None)
    if shape is None or not hasattr(x, 'ndim'):
        return None
    return shape


def with_input_check(triple, name: str, layout: str):
    """Wraps ``(init_fn, apply_fn, kernel_fn)`` with :func:`check_input`.

    Only array inputs are checked; a ``Kernel`` object passed to ``kernel_fn``
    (stax composition) and pytrees of inputs pass through untouched. The
    wrapped functions carry ``model_name`` and ``input_layout`` attributes.

    Args:
        triple: a neural-tangents stax triple.
        name: the architecture name for the messages.
        layout: ``'image'`` or ``'any'``.

    Returns:
        The wrapped triple, with identical call signatures.
    """
    init_fn, apply_fn, kernel_fn = triple

    class _Spec:
        model_name = name
        input_layout = layout

    def check(x_shape):
        if x_shape is not None:
            check_input(_Spec, x_shape)

    @functools.wraps(init_fn)
    def checked_init_fn(rng, input_shape, *args, **kwargs):
        if isinstance(input_shape, (tuple, list)) and all(
                isinstance(s, Integral) for s in input_shape):
            check(input_shape)
        return init_fn(rng, input_shape, *args, **kwargs)

    @functools.wraps(apply_fn)
    def checked_apply_fn(params, inputs, *args, **kwargs):
        check(_shape_of(inputs))
        return apply_fn(params, inputs, *args, **kwargs)

    @functools.wraps(kernel_fn)
    def checked_kernel_fn(x1_or_kernel, x2=None, get=None, **kwargs):
        check(_shape_of(x1_or_kernel))
        check(_shape_of(x2))
        return kernel_fn(x1_or_kernel, x2, get, **kwargs)

    for fn in (checked_init_fn, checked_apply_fn, checked_kernel_fn):
        fn.model_name = name
        fn.input_layout = layout
    return checked_init_fn, checked_apply_fn, checked_kernel_fn
