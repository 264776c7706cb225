"""The empirical NTK of a finite network and how much it moves in training.

Jacot et al. 2018 ("Neural Tangent Kernel", Thm. 2 and Fig. 1) prove that the
NTK stays constant during training in the infinite-width limit; at width ``n``
it moves by ``O(1/sqrt(n))`` (Lee et al. 2019, Thm. 2.1; Huang & Yau 2020, the
Neural Tangent Hierarchy; Li, Luo & Yip 2020 for residual networks). This
module measures that:

* :func:`empirical_ntk_fn`: ``Theta(x1, x2) = J(x1) J(x2)^T`` via
  ``nt.empirical_ntk_fn`` or ntkexp's layer-tap structured derivatives
  (:mod:`ntkexp.structured_ntk`), traced (averaged) over the outputs, so it
  is comparable with the infinite-width ``kernel_fn(..., 'ntk')``;
* :func:`layer_ntk_fn`: the NTK's part from each parameter leaf (weight
  matrix, bias), which add up to it; :func:`leaf_groups` names the part of
  the net each leaf is in (input layer, hidden layers, readout);
* :func:`relative_change`: ``||Theta_t - Theta_0||_F / ||Theta_0||_F``;
* :func:`scale_and_shape_change`: that change split into a rescaling of
  ``Theta_0`` and the part orthogonal to it;
* :func:`centering_terms`: a change against the centring ``c`` of the
  trained net ``f - c f_0`` split into what fitting the targets and undoing
  the initial function ``f_0`` each contribute;
* :func:`ntk_slice`: ``Theta(x0, x)`` for one point ``x0`` against many ``x``
  (Jacot et al. 2018, Fig. 1) from one gradient and one JVP per output, so it
  needs memory for only a few copies of the parameters even at width 10^4;
* :func:`ntk_derivative`: ``D Theta(params)[v]``, the change of the NTK
  along a parameter direction; along the linearised network's displacement
  it is the Neural Tangent Hierarchy's first correction (the ``K^(3)`` term,
  Huang & Yau 2020; the "dNTK" of Roberts, Yaida & Hanin 2022);
* :func:`ntk_taylor_terms`: ``D Theta[v]`` and ``D^2 Theta[v, v]``, the
  first two terms of the NTK's Taylor expansion along the actual
  displacement (the "dNTK" and "ddNTK" terms, both ``O(1/n)``: Dyer &
  Gur-Ari 2020; Roberts, Yaida & Hanin 2022);
* :func:`second_order_gd`: full-batch training (any loss, momentum, L2) to
  second order in the displacement, from initialisation alone; the NTK it
  gives is the hierarchy truncated at ``K^(4)``;
* :func:`loglog_slope`: the least-squares slope of ``log y`` on ``log x``
  (drift vs width; theory: about -1/2).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


#: ``implementation`` code of :func:`ntkexp.structured_ntk.structured_ntk_fn`
#: (codes 1-3 are ``nt.NtkImplementation``).
NTKEXP_STRUCTURED = 4
#: The same with the network's float32 convolutions as three TF32 tensor-core
#: products each (``convolutions='tf32x3'``, :mod:`ntkexp.tf32x3_conv`; GPUs).
NTKEXP_STRUCTURED_TF32X3 = 5

#: ``ntk_implementation`` options by name: ``nt.NtkImplementation``'s 1-3,
#: :data:`NTKEXP_STRUCTURED` and :data:`NTKEXP_STRUCTURED_TF32X3`.
IMPLEMENTATIONS = {'jacobian_contraction': 1, 'ntk_vector_products': 2,
                   'structured_derivatives': 3,
                   'ntkexp_structured': NTKEXP_STRUCTURED,
                   'ntkexp_structured_tf32x3': NTKEXP_STRUCTURED_TF32X3}


def implementation_code(value: Any,
                        choices: dict[str, int] = IMPLEMENTATIONS) -> int:
    """The code of an ``experiment.ntk_implementation`` option.

    Args:
        value: a name of ``choices`` (any case) or one of their codes.
        choices: names and codes (:data:`IMPLEMENTATIONS`, or more).

    Raises:
        ValueError: anything else (one line with the valid values), or
            :data:`NTKEXP_STRUCTURED_TF32X3` off a GPU.
    """
    if isinstance(value, str) and value.lower() in choices:
        code = choices[value.lower()]
    elif (isinstance(value, int) and not isinstance(value, bool)
            and value in choices.values()):
        code = int(value)
    else:
        codes = sorted(choices.values())
        raise ValueError(
            f'experiment.ntk_implementation={value!r} is invalid; use '
            + ', '.join(choices) + f' (or {codes[0]}-{codes[-1]})')
    if code == NTKEXP_STRUCTURED_TF32X3:
        from ntkexp import backend  # pylint: disable=g-import-not-at-top
        if backend.target_backend() != 'gpu':
            raise ValueError(
                f'experiment.ntk_implementation={value!r} needs a GPU (TF32 '
                f'tensor cores); this backend is '
                f'{backend.target_backend()!r}: use ntkexp_structured')
    return code


def empirical_ntk_fn(apply_fn: Callable, implementation: int = 1,
                     vmap_axes: Optional[int] = 0) -> Callable:
    """``kernel(x1, x2, params) -> (n1, n2)`` empirical NTK traced over outputs.

    Args:
        apply_fn: ``apply_fn(params, x)``.
        implementation: ``nt.NtkImplementation`` value: 1 Jacobian
            contraction (default, most reliable), 2 NTK-vector products, 3
            structured derivatives; or 4 (:data:`NTKEXP_STRUCTURED`):
            ntkexp's structured derivatives from layer inputs and cotangents
            (the same kernel, tested to float64 precision; 2.2x-3.2x
            Jacobian contraction for a WRN-10-4 on a CPU,
            ``results/bench/session5`` and ``session11``); or 5
            (:data:`NTKEXP_STRUCTURED_TF32X3`, GPUs): 4 with the network's
            float32 convolutions as three TF32 tensor-core products each
            (float32-accurate; float64 ignores it).
        vmap_axes: batch axis of inputs and outputs for ``nt``'s vmapping
            (0 for the stax models, whose examples are independent; 4
            requires 0).

    Returns:
        A jitted kernel function.

    Raises:
        ValueError: implementation 4 with ``vmap_axes`` other than 0.
    """
    if int(implementation) in (NTKEXP_STRUCTURED, NTKEXP_STRUCTURED_TF32X3):
        if vmap_axes != 0:
            raise ValueError(
                f'implementation={int(implementation)} (ntkexp structured) '
                'needs independent examples along axis 0 (vmap_axes=0), got '
                f'{vmap_axes!r}; use implementation 1-3 for other networks')
        from ntkexp import structured_ntk  # pylint: disable=g-import-not-at-top
        convolutions = ('tf32x3' if int(implementation)
                        == NTKEXP_STRUCTURED_TF32X3 else 'default')
        return jax.jit(structured_ntk.structured_ntk_fn(
            apply_fn, trace_axes=(-1,), convolutions=convolutions))
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
    fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=vmap_axes,
                             implementation=int(implementation))
    return jax.jit(fn)


def layer_ntk_fn(apply_fn: Callable, implementation: int = 3) -> Callable:
    """``kernels(params, x) -> [Theta_l]``: the empirical NTK's part from each
    parameter leaf.

    ``Theta = sum_l J_l J_l^T`` over the leaves ``l`` of ``params`` (a stax
    net's weight matrices and biases, in ``jax.tree_util.tree_leaves``
    order), each traced over the outputs like :func:`empirical_ntk_fn`; they
    add up to its kernel. Which layers' kernels grow or shrink in training
    is where an NTK's change comes from (``experiment.ntk_layers``).

    Args:
        apply_fn: ``apply_fn(params, x)``.
        implementation: ``nt.NtkImplementation`` value 1-3 for each leaf's
            kernel (ntkexp's structured derivatives, 4-5, tap whole layers
            and map to 3 here).

    Returns:
        ``kernels(params, x)``: a list of ``(n, n)`` arrays, one per leaf;
        one compiled function per leaf and shape.
    """
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
    implementation = int(implementation)
    if implementation in (NTKEXP_STRUCTURED, NTKEXP_STRUCTURED_TF32X3):
        implementation = 3

    @functools.partial(jax.jit, static_argnums=(2, 3))
    def leaf_kernel(leaves, x, index, treedef):
        def apply_leaf(leaf, x_):
            others = list(leaves)
            others[index] = leaf
            return apply_fn(jax.tree_util.tree_unflatten(treedef, others), x_)
        return nt.empirical_ntk_fn(apply_leaf, trace_axes=(-1,), vmap_axes=0,
                                   implementation=implementation)(
                                       x, None, leaves[index])

    def kernels(params, x):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        return [leaf_kernel(leaves, x, i, treedef) for i in range(len(leaves))]

    return kernels


def shape_text(shape: tuple[int, ...]) -> str:
    """A leaf's shape as the ``layer_shape`` column writes it: ``(1024, 10)``
    -> ``'1024x10'``, ``()`` -> ``'scalar'`` (:func:`shape_from_text`
    reads it back)."""
    return 'x'.join(str(int(n)) for n in shape) or 'scalar'


def shape_from_text(text: str) -> tuple[int, ...]:
    """:func:`shape_text`'s inverse: ``'1024x10'`` -> ``(1024, 10)``."""
    text = str(text)
    return () if text == 'scalar' else tuple(int(d) for d in text.split('x'))


#: The parts of a net that :func:`leaf_groups` tells apart, input to output.
LEAF_GROUPS = ('input', 'hidden', 'readout')


def leaf_groups(shapes: list[tuple[int, ...]]) -> list[str]:
    """Which part of the net each parameter leaf is in, from the leaves'
    shapes in ``jax.tree_util.tree_leaves`` order (:func:`layer_ntk_fn`).

    A leaf whose dimensions are all 1 but the last (``(n,)``, ``(1, n)``,
    a convolution's ``(1, 1, 1, n)``) is a bias and belongs to the layer of
    the leaf before it; the first leaf and any other (a weight matrix, a
    convolution's filter) starts a layer. The first layer is ``'input'``
    (an FC net's first ``W, b``; a ResNet's input projection ``V_0``), the
    last ``'readout'`` and every other ``'hidden'`` (an FC net's hidden
    layers; a ResNet's residual branches ``W_l, V_l``), so that a split of
    the NTK by leaf can be summed by :data:`LEAF_GROUPS`.

    Args:
        shapes: each leaf's shape, in order.

    Returns:
        One of :data:`LEAF_GROUPS` per leaf.

    Raises:
        ValueError: no leaves, or a single layer (no input and readout to
            tell apart).
    """
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if not shapes:
        raise ValueError('leaf_groups needs the leaves\' shapes; got none')
    # The first leaf is a weight even where it looks like a bias (a 1-d
    # input's first W is (1, n)).
    starts = [i == 0 or not all(d == 1 for d in s[:-1])
              for i, s in enumerate(shapes)]
    layer = list(np.cumsum(starts) - 1)
    last = layer[-1]
    if last == 0:
        raise ValueError('leaf_groups tells the input layer from the readout: '
                         f'the net has one layer only (shapes {shapes})')
    return ['input' if l == 0 else 'readout' if l == last else 'hidden'
            for l in layer]


def relative_change(kernel_t: np.ndarray, kernel_0: np.ndarray) -> float:
    """``||K_t - K_0||_F / ||K_0||_F``."""
    kernel_t = np.asarray(kernel_t, np.float64)
    kernel_0 = np.asarray(kernel_0, np.float64)
    return float(np.linalg.norm(kernel_t - kernel_0) / np.linalg.norm(kernel_0))


def scale_and_shape_change(kernel_t: np.ndarray,
                           kernel_0: np.ndarray) -> tuple[float, float]:
    """The NTK's change split into a rescaling of ``K_0`` and the rest.

    Writes ``K_t - K_0 = a K_0 + E`` with ``<E, K_0>_F = 0`` and returns
    ``(a, ||E||_F / ||K_0||_F)``: the signed relative change of the kernel's
    scale (``a > 0``: the kernel grew) and of its shape. They are the two
    legs of :func:`relative_change`: ``relative_change**2 = a**2 +
    shape**2``. In training on ``y``, undoing the initial function ``f_0``
    shrinks the kernel's scale at first order, and fitting ``y`` and the
    second order in ``f_0`` grow it (:func:`centering_terms`,
    ``results/resnet-ntk-alpha/``).
    """
    kernel_t = np.asarray(kernel_t, np.float64)
    kernel_0 = np.asarray(kernel_0, np.float64)
    change = kernel_t - kernel_0
    scale = along(change, kernel_0)
    shape = float(np.linalg.norm(change - scale * kernel_0)
                  / np.linalg.norm(kernel_0))
    return scale, shape


def along(kernel: np.ndarray, kernel_0: np.ndarray) -> float:
    """``<kernel, K_0>_F / ||K_0||_F^2``: ``kernel``'s component along
    ``K_0``. Of a change ``K_t - K_0`` it is
    :func:`scale_and_shape_change`'s ``a``; it is linear, so the parts of a
    kernel (:func:`layer_ntk_fn`) give parts that add up."""
    kernel = np.asarray(kernel, np.float64)
    kernel_0 = np.asarray(kernel_0, np.float64)
    return float(np.vdot(kernel, kernel_0) / np.vdot(kernel_0, kernel_0))


class CenteringTerms(NamedTuple):
    """:func:`centering_terms`' fit ``v(c) = from_y + from_f0 (1 - c) +
    from_f0_squared (1 - c)**2`` and its root-mean-square residual."""
    from_y: float
    from_f0: float
    from_f0_squared: float
    residual: float


def centering_terms(center_scales: np.ndarray,
                    values: np.ndarray) -> CenteringTerms:
    """A kernel change against the centring, split into its sources.

    Trained on ``y``, the centred net ``f - c f_0`` starts from the residual
    ``r_0 = (1 - c) f_0 - y``. In the lazy regime the displacement is linear
    in ``r_0`` and the NTK's change is its Taylor expansion to second order,
    ``D Theta[d] + D^2 Theta[d, d] / 2`` (Dyer & Gur-Ari 2020), so one seed's
    change is a quadratic in ``1 - c``: ``from_y`` (fitting ``y`` from the
    zero function, ``c = 1``), ``from_f0`` (first order in ``f_0``, with the
    ``f_0``-``y`` cross term) and ``from_f0_squared`` (second order in
    ``f_0``). Least squares over three or more centrings.

    Raises:
        ValueError: fewer than three distinct centrings.
    """
    c = np.asarray(center_scales, np.float64)
    v = np.asarray(values, np.float64)
    if np.unique(c).size < 3:
        raise ValueError('centering_terms fits a quadratic: give three or more '
                         f'distinct centrings, not {sorted(set(c.tolist()))}')
    u = 1.0 - c
    design = np.stack([np.ones_like(u), u, u * u], axis=1)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    residual = float(np.sqrt(np.mean((design @ coef - v) ** 2)))
    return CenteringTerms(*(float(x) for x in coef), residual)


def undone_share(from_y, from_f0, from_f0_squared):
    """``-(from_f0 + from_f0_squared) / from_y`` of :func:`centering_terms`:
    the share of the kernel's growth from fitting ``y`` that the plain net
    (``c = 0``) loses to undoing ``f_0``; 1 = all of it (inf/NaN where
    ``from_y = 0``). Numbers, arrays or pandas columns alike."""
    return -(from_f0 + from_f0_squared) / from_y


def undone_share_per_f0(from_y, from_f0, from_f0_squared, f0_over_y):
    """:func:`undone_share` per unit of the initial output's size
    ``f0_over_y`` (``mean f_0^2 / mean y^2`` on the training set): about 0.4
    for every net of ``results/resnet-ntk-alpha/`` at depths 3-4, whose
    shares span 10x."""
    return undone_share(from_y, from_f0, from_f0_squared) / f0_over_y


def ntk_slice(apply_fn: Callable, params: PyTree, x0: jnp.ndarray,
              x: jnp.ndarray) -> jnp.ndarray:
    """``Theta(x0, x_i)`` for every row ``x_i`` of ``x``, averaged over outputs.

    For each output ``c``: ``g = d f_c(x0) / d params`` (one VJP), then
    ``J(x) g`` (one JVP) gives ``<df_c(x0), df(x_i)>``; its ``c``-th output is
    the ``(c, c)`` entry of the NTK. The mean over ``c`` is the traced kernel of
    :func:`empirical_ntk_fn` (``trace_axes=(-1,)`` in neural-tangents).

    Args:
        apply_fn: ``apply_fn(params, x)`` returning ``(N, k)``.
        params: the network's parameters.
        x0: one input with a leading batch axis of size 1.
        x: ``(N, ...)`` inputs.

    Returns:
        ``(N,)`` kernel values.
    """
    out_dim = apply_fn(params, x0).shape[-1]

    def f_x(p):
        return apply_fn(p, x)

    total = 0.0
    for c in range(out_dim):
        grad = jax.grad(lambda p, c=c: apply_fn(p, x0)[0, c])(params)
        _, tangent = jax.jvp(f_x, (params,), (grad,))
        total = total + tangent[:, c]
    return total / out_dim


def ntk_derivative(apply_fn: Callable, params: PyTree, tangent: PyTree,
                   x: jnp.ndarray) -> jnp.ndarray:
    """``D Theta(params)[tangent]`` on ``x``: the NTK's derivative along a direction.

    With ``Theta = (1/k) sum_c J_c J_c^T`` (traced over the ``k`` outputs, as
    :func:`empirical_ntk_fn`) and ``H_c = d J_c [tangent]`` (a
    forward-over-reverse product), ``D Theta[v] = (1/k) sum_c (H_c J_c^T +
    J_c H_c^T)``.

    The Neural Tangent Hierarchy (Huang & Yau 2020) writes the
    NTK's flow as ``d Theta_t(a, b) / dt = -(1/n) sum_g K3_t(a, b, g)
    (f_t(x_g) - y_g)`` with ``K3(a, b, g) = <grad Theta(a, b), grad f(x_g)>``.
    Freezing ``K3`` at initialisation and the residuals at the NTK (linear)
    dynamics, the hierarchy truncated at ``K3`` integrates to ``Theta_t -
    Theta_0 = D Theta(theta_0)[theta_lin(t) - theta_0]``: this function at the
    linearised network's displacement, for gradient flow and gradient descent
    alike (the displacement is the same sum of the same gradients).

    Args:
        apply_fn: ``apply_fn(params, x)`` returning ``(N, k)``.
        params: where the derivative is taken.
        tangent: the direction, a pytree like ``params``.
        x: ``(N, ...)`` inputs.

    Returns:
        ``(N, N)``, symmetric; one output's Jacobian (``N`` x parameters) and
        its tangent are held at a time.
    """
    out = jax.eval_shape(apply_fn, params, x)

    def jacobian(p, c):
        return jax.jacrev(lambda q: jax.lax.dynamic_index_in_dim(
            apply_fn(q, x), c, axis=1, keepdims=False))(p)

    def add_output(c, total):
        jac, jac_dot = jax.jvp(lambda p: jacobian(p, c), (params,), (tangent,))
        n = x.shape[0]
        half = sum(jnp.dot(a.reshape(n, -1), b.reshape(n, -1).T)
                   for a, b in zip(jax.tree_util.tree_leaves(jac_dot),
                                   jax.tree_util.tree_leaves(jac)))
        return total + half + half.T

    zero = jnp.zeros((x.shape[0], x.shape[0]), out.dtype)
    return jax.lax.fori_loop(0, out.shape[-1], add_output, zero) / out.shape[-1]


def ntk_taylor_terms(apply_fn: Callable, params: PyTree, tangent: PyTree,
                     x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(D Theta[v], D^2 Theta[v, v])`` at ``params`` on ``x``.

    ``Theta(params + v) = Theta + D Theta[v] + D^2 Theta[v, v] / 2 + ...``
    One forward-mode derivative of :func:`ntk_derivative` along ``v`` gives
    the second term with the first (the same memory per output, four copies
    of one output's Jacobian).

    Args:
        apply_fn: ``apply_fn(params, x)`` returning ``(N, k)``.
        params: where the derivatives are taken.
        tangent: the direction ``v``.
        x: ``(N, ...)`` inputs.

    Returns:
        Two ``(N, N)`` arrays.
    """
    return jax.jvp(lambda p: ntk_derivative(apply_fn, p, tangent, x),
                   (params,), (tangent,))


class SecondOrderState(NamedTuple):
    """Where :func:`second_order_gd` is: the displacement ``v + w`` from
    initialisation to first and second order, and the optimiser's momentum
    trace to the same orders (zeros without momentum)."""

    v: PyTree
    w: PyTree
    trace_v: PyTree
    trace_w: PyTree


@functools.partial(jax.jit, static_argnums=(0, 1))
def _second_order_run(apply_fn, loss, params, x, y, lr, momentum, l2, offset,
                      state, start, stop):
    """:func:`second_order_gd`'s steps ``start`` to ``stop`` (compiled once
    per network, loss and shapes: parameters, data and rates are arguments)."""
    f0 = apply_fn(params, x)
    loss_grad = jax.grad(loss)  # dL/df at the outputs, L(f) = loss(f, y)
    tree = jax.tree_util.tree_map

    def f(p):
        return apply_fn(p, x)

    def pull(p, r):
        return jax.vjp(f, p)[1](r)[0]

    def step(_, carry):
        v, w, trace_v, trace_w = carry
        jv, fvv = jax.jvp(lambda p: jax.jvp(f, (p,), (v,))[1], (params,), (v,))
        jw = jax.jvp(f, (params,), (w,))[1]
        # The linearised net's loss gradient and its change to second order.
        r, dr = jax.jvp(lambda fx: loss_grad(fx, y), (f0 + jv,),
                        (jw + fvv / 2,))
        g1, hv = jax.jvp(lambda p: pull(p, r), (params,), (v,))
        g2 = pull(params, dr)
        trace_v = tree(lambda t, g, o, a: momentum * t + g + l2 * (o + a),
                       trace_v, g1, offset, v)
        trace_w = tree(lambda t, h, g, b: momentum * t + h + g + l2 * b,
                       trace_w, hv, g2, w)
        return SecondOrderState(tree(lambda a, t: a - lr * t, v, trace_v),
                                tree(lambda b, t: b - lr * t, w, trace_w),
                                trace_v, trace_w)

    return jax.lax.fori_loop(start, stop, step, state)


class SecondOrderGD:
    """Full-batch training to second order in the displacement, from
    initialisation alone (built by :func:`second_order_gd`)."""

    def __init__(self, apply_fn, loss, params, x, y, lr, momentum, l2, center):
        # theta_0 - c, where the L2 penalty's gradient starts (l2 = 0 makes
        # it count for nothing)
        offset = (params if center is None
                  else jax.tree_util.tree_map(jnp.subtract, params, center))
        self._run = functools.partial(_second_order_run, apply_fn, loss, params,
                                      x, y, lr, momentum, l2, offset)
        self._params = params

    def init(self) -> SecondOrderState:
        """Step 0: everything zero."""
        zeros = jax.tree_util.tree_map(jnp.zeros_like, self._params)
        return SecondOrderState(zeros, zeros, zeros, zeros)

    def advance(self, state: SecondOrderState, start: int,
                stop: int) -> SecondOrderState:
        """From step ``start`` to ``stop``."""
        return self._run(state, start, stop)


def second_order_gd(apply_fn: Callable, params: PyTree, x: jnp.ndarray,
                    y: jnp.ndarray, lr: float, loss: Optional[Callable] = None,
                    momentum: float = 0.0, l2: float = 0.0,
                    center: Optional[PyTree] = None) -> SecondOrderGD:
    """Full-batch gradient descent, to second order in the displacement.

    Gradient descent on ``L(f(theta)) + l2 / 2 ||theta - c||^2`` (``L =
    loss(., y)``; ``c`` is ``center``, zero by default), with heavy-ball
    momentum as ``optax.sgd(lr, momentum)`` runs it (``u_{s+1} = momentum u_s
    + g_s``, ``theta_{s+1} = theta_s - lr u_{s+1}``), expanded about
    ``theta_0`` as ``theta_s - theta_0 = v_s + w_s + ...``. ``v`` is the
    linearised network's displacement, exactly as it trains
    (``f_lin = f_0 + J v``; :func:`ntkexp.training.linearized_apply_fn`):

    ``g^v_s = J^T r_s + l2 (theta_0 - c + v_s)``,  ``r_s = L'(f_0 + J v_s)``;

    ``w`` is the correction to first order in the network's curvature:

    ``g^w_s = H_{r_s} v_s + J^T L''(f_0 + J v_s)[J w_s + f''[v_s, v_s] / 2]
    + l2 w_s``,

    all at ``theta_0``, with ``H_r v = D(J^T r)[v]`` (the Hessian of ``r . f``
    along ``v``) and ``f''[v, v]`` the outputs' second derivative; each of
    ``v`` and ``w`` has its own momentum trace. The first term of ``w`` is the
    Jacobian's change along the path, the second the loss gradient's own
    change fed back through ``J^T``. For the MSE ``0.5 mean((f - y)^2)``,
    ``L'(f) = (f - y) / N`` and ``L'' = 1 / N`` (``N = y.size``).

    The NTK to the same order is ``Theta_0 + D Theta[v + w] + D^2 Theta[v,
    v] / 2``: in the Neural Tangent Hierarchy's terms (Huang & Yau 2020), the
    hierarchy truncated at ``K^(4)`` (``K^(3)`` moving, ``K^(4)`` frozen at
    initialisation) with the residuals it predicts itself, to second order
    (``d/dt D^2 Theta[v, v] / 2 = D^2 Theta[dv/dt, v]`` is the ``K^(4)``
    part driven by ``J^T r``; ``D Theta[w]`` the rest). Every term is
    computed at initialisation: no trained network enters.

    Args:
        apply_fn: ``apply_fn(params, x)`` returning ``(N, k)``.
        params: ``theta_0``.
        x: the training inputs.
        y: the training targets, shaped like ``apply_fn(params, x)``.
        lr: the learning rate.
        loss: ``loss(fx, y)``, a scalar; default the MSE
            (:func:`ntkexp.training.mse_loss`).
        momentum: the heavy-ball coefficient (0: plain gradient descent).
        l2: the L2 coefficient.
        center: where the L2 penalty pulls (None: zero).

    Returns:
        A :class:`SecondOrderGD`: ``state = s.init()``, then
        ``s.advance(state, start, stop)`` (compiled once per network, loss
        and shapes).
    """
    if loss is None:
        from ntkexp.training import mse_loss  # pylint: disable=g-import-not-at-top
        loss = mse_loss
    return SecondOrderGD(apply_fn, loss, params, x, y, lr, float(momentum),
                         float(l2), center)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares fit ``log y = slope * log x + intercept``.

    Args:
        x: positive abscissae (e.g. widths).
        y: positive values (e.g. relative NTK change).

    Returns:
        ``(slope, intercept)`` (natural logarithms).

    Raises:
        ValueError: fewer than two distinct ``x`` or non-positive values.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError('log-log fit needs positive values')
    if len(np.unique(x)) < 2:
        raise ValueError('log-log fit needs at least two distinct x values')
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)
