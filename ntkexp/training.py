"""Training finite networks with optax: losses, optimisers, the step loop.

Conventions match ``nt.predict`` so that a trained network can be compared with
its infinite-width prediction at the same time ``t`` (Lee et al. 2019, "Wide
Neural Networks of Any Depth Evolve as Linear Models Under Gradient Descent",
Sec. 2; Jacot et al. 2018, Sec. 5):

* ``mse``: ``0.5 * mean((f - y)**2)`` over points *and* outputs, i.e.
  ``||f - y||^2 / (2 y.size)``, the loss of ``nt.predict.gradient_descent_mse``
  and ``nt.predict.max_learning_rate``. Full-batch gradient descent with
  learning rate ``lr`` for ``s`` steps is then the Euler discretisation of the
  kernel gradient flow ``df/dt = -Theta (f - y) / y.size`` up to time
  ``t = lr * s`` (``predict_fn(t=s)`` with ``learning_rate=lr``).
* ``xent``: softmax cross-entropy averaged over points, ``-sum(y log
  softmax(f)) / n``, with one-hot targets.
* Mini-batch SGD uses the same loss on the batch; its expected function-space
  step equals the full-batch one, so ``t = lr * s`` still applies (in
  expectation).
* Momentum (heavy ball, ``optax.sgd(lr, momentum)``) corresponds to
  ``nt.predict.gradient_descent(..., momentum=m)``, whose ODE runs in units of
  ``sqrt(lr)``; pass ``t = s`` steps with ``learning_rate=lr`` there.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax

LOSSES = ('mse', 'xent')
OPTIMIZERS = ('gd', 'sgd', 'momentum')

PyTree = Any
Loss = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def mse_loss(fx: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """``0.5 * mean((fx - y)**2)``: nt.predict's MSE convention."""
    return 0.5 * jnp.mean((fx - y) ** 2)


def xent_loss(fx: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Softmax cross-entropy with probability targets ``y``, mean over points."""
    return -jnp.sum(y * jax.nn.log_softmax(fx, axis=-1)) / fx.shape[0]


def get_loss(name: str) -> Loss:
    """The loss ``loss(fx, y)`` named ``mse`` or ``xent``.

    Raises:
        ValueError: unknown name.
    """
    if name == 'mse':
        return mse_loss
    if name == 'xent':
        return xent_loss
    raise ValueError(f"unknown loss {name!r}; use 'mse' or 'xent'")


def make_optimizer(name: str, lr: float, momentum: float = 0.9
                   ) -> optax.GradientTransformation:
    """``gd`` / ``sgd``: plain ``optax.sgd(lr)``; ``momentum``: heavy ball.

    ``gd`` and ``sgd`` differ only in the batches the :class:`Trainer` feeds
    (full batch vs mini-batches).

    Raises:
        ValueError: unknown name.
    """
    if name in ('gd', 'sgd'):
        return optax.sgd(lr)
    if name == 'momentum':
        return optax.sgd(lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}")


@functools.partial(jax.jit, static_argnums=0)
def _ntk_product(apply_fn: Callable, params: PyTree, x: jnp.ndarray,
                 u: jnp.ndarray) -> jnp.ndarray:
    """``J (J^T u)`` on ``x`` (:func:`ntk_top_eigenvalue`'s Lanczos product),
    compiled once per network and shapes: every seed's parameters reuse it."""
    def f(q):
        return apply_fn(q, x)
    _, vjp = jax.vjp(f, params)
    return jax.jvp(f, (params,), vjp(u))[1]


def ntk_top_eigenvalue(apply_fn: Callable, params: PyTree, x: jnp.ndarray,
                       tol: float = 1e-8) -> float:
    """The largest eigenvalue of a network's NTK over inputs *and* outputs.

    The ``(n k) x (n k)`` matrix ``J J^T`` (``J``: the Jacobian of the ``n x k``
    outputs), matrix-free: Lanczos (``scipy.sparse.linalg.eigsh``) on ``u ->
    J (J^T u)``, one VJP and one JVP of the network on ``x`` per product, so
    it needs the memory of one full-batch gradient step. Its eigenvalues are
    the curvatures of the linearised network's MSE loss, so ``2 y.size /
    lambda`` is that network's exact stability bound. The traced NTK (the
    mean over outputs of the diagonal blocks) misses the blocks between
    outputs, which vanish only at infinite width: for the 3-layer erf FC net
    of width 64 on 64 digits with 10 outputs (``experiment=nth``) its top
    eigenvalue was 0.47-0.54 of this one (three seeds).

    Args:
        apply_fn: ``apply_fn(params, x)`` returning ``(n, k)``.
        params: the network's parameters.
        x: the training inputs.
        tol: Lanczos' relative tolerance.

    Returns:
        ``lambda_max(J J^T)``.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh  # pylint: disable=g-import-not-at-top
    out = jax.eval_shape(apply_fn, params, x)
    size = int(np.prod(out.shape))
    operator = LinearOperator((size, size), dtype=np.float64, matvec=lambda v: np.asarray(
        _ntk_product(apply_fn, params, x, jnp.asarray(v.reshape(out.shape),
                                                      out.dtype)),
        np.float64).ravel())
    top = eigsh(operator, k=1, which='LA', tol=tol, return_eigenvectors=False,
                v0=np.ones(size))
    return float(top[0])


def max_learning_rate(ntk_train_train: Optional[np.ndarray], y_train_size: int,
                      momentum: float = 0.0, l2: float = 0.0,
                      top_eigenvalue: Optional[float] = None) -> float:
    """Largest stable learning rate of (momentum) GD on the MSE loss.

    This is ``nt.predict.max_learning_rate``: ``2 (1 + momentum) y.size /
    lambda_max(Theta)`` for the loss ``||f - y||^2 / (2 y.size)``, with
    ``Theta`` the NTK on the training set (per output, i.e. traced over the
    output axis). neural-tangents 0.6.5's own function calls
    ``scipy.linalg.eigvalsh(eigvals=...)``, which SciPy >= 1.14 removed; it is
    used when it works and this identical formula otherwise. An L2 penalty
    ``l2 / 2 ||theta - c||^2`` adds ``l2`` to every curvature, so the bound
    becomes ``2 (1 + momentum) / (lambda_max / y.size + l2)``.

    Args:
        ntk_train_train: the ``(n, n)`` NTK on the training inputs.
        y_train_size: ``y_train.size`` (``n`` times the number of outputs).
        momentum: the momentum of heavy-ball GD (0 for plain GD).
        l2: the L2 coefficient of the training objective (see
            :class:`Trainer`).
        top_eigenvalue: ``lambda_max`` itself (e.g. of the NTK over outputs
            too, :func:`ntk_top_eigenvalue`), instead of ``ntk_train_train``.

    Returns:
        The maximal learning rate.
    """
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
    top, bound = top_eigenvalue, None
    if top is None:
        kernel = np.asarray(ntk_train_train, np.float64)
        try:
            bound = float(nt.predict.max_learning_rate(kernel, y_train_size,
                                                       momentum=momentum))
        except TypeError:  # scipy >= 1.14: eigvalsh() lost ``eigvals=``.
            top = np.linalg.eigvalsh(kernel)[-1]
    if bound is None:
        bound = 2 * (1 + momentum) * y_train_size / (float(top) + 1e-12)
    if l2:
        bound = 1.0 / (1.0 / bound + float(l2) / (2 * (1 + momentum)))
    return bound


def resolve_learning_rate(lr: Optional[float], lr_fraction: Optional[float],
                          ntk_train_train: Optional[np.ndarray],
                          y_train_size: int, momentum: float = 0.0,
                          l2: float = 0.0, top_eigenvalue: Optional[float] = None
                          ) -> tuple[float, Optional[float]]:
    """The learning rate: ``lr``, or ``lr_fraction * max_learning_rate``.

    Args:
        lr: a fixed learning rate (used when ``lr_fraction`` is None).
        lr_fraction: a fraction of :func:`max_learning_rate` of the kernel.
        ntk_train_train: the NTK on the training set (needed with
            ``lr_fraction``).
        y_train_size: ``y_train.size``.
        momentum: momentum (the stability bound grows by ``1 + momentum``).
        l2: the L2 coefficient of the objective (it lowers the bound).
        top_eigenvalue: the kernel's largest eigenvalue, used instead of
            ``ntk_train_train`` when given.

    Returns:
        ``(lr, max_lr)``; ``max_lr`` is None when no kernel was given.
    """
    max_lr = None
    if ntk_train_train is not None or top_eigenvalue is not None:
        max_lr = max_learning_rate(ntk_train_train, y_train_size, momentum,
                                   l2, top_eigenvalue)
    if lr_fraction is None:
        if lr is None:
            raise ValueError('set experiment.lr or experiment.lr_fraction')
        return float(lr), max_lr
    if max_lr is None:
        raise ValueError('lr_fraction needs the NTK on the training set')
    return float(lr_fraction) * max_lr, max_lr


def cast(tree: PyTree, dtype: Any) -> PyTree:
    """Casts the floating leaves of a pytree to ``dtype``."""
    def one(leaf):
        if hasattr(leaf, 'dtype') and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf, dtype)
        return leaf
    return jax.tree_util.tree_map(one, tree)


def tree_norm(tree: PyTree) -> jnp.ndarray:
    """Euclidean norm of all leaves of a pytree together."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def tree_distance(a: PyTree, b: PyTree) -> jnp.ndarray:
    """``||a - b||`` over all leaves."""
    return tree_norm(jax.tree_util.tree_map(lambda u, v: u - v, a, b))


@dataclasses.dataclass
class TrainState:
    """Parameters, optimiser state and the number of steps taken."""
    params: PyTree
    opt_state: PyTree
    step: int = 0


LOOPS = ('auto', 'fori', 'python')


def _jaxpr_has(jaxpr, primitive: str) -> bool:
    """Whether a (closed) jaxpr, sub-jaxprs included, uses ``primitive``."""
    jaxpr = getattr(jaxpr, 'jaxpr', jaxpr)
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == primitive:
            return True
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            if _jaxpr_has(sub, primitive):
                return True
    return False


def choose_loop(loop: str, uses_conv: bool, backend: Optional[str] = None
                ) -> str:
    """``fori`` or ``python``: how a :class:`Trainer` runs its steps.

    ``auto`` is ``python`` for a model with convolutions on the CPU backend
    and ``fori`` otherwise. XLA's CPU compiler (jaxlib 0.10) hands a
    convolution to its fast Eigen runtime only outside loops: inside a
    ``while`` body (``lax.fori_loop``, ``lax.scan``) the backward convolutions
    keep their autodiff dimension orders (``f01b_i01o->01bf``,
    ``b01f_01oi->b01f``) and are emitted as naive loop nests. Measured on 2
    shared CPU cores (CNN-VEC, 4 layers x 16 channels, 256 CIFAR-10 images,
    float32): one GD step 0.7 s as a jitted call, 50-60 s inside a
    ``fori_loop`` (with or without ``--xla_cpu_max_isa=AVX2``).

    Raises:
        ValueError: unknown ``loop``.
    """
    if loop not in LOOPS:
        raise ValueError(f'unknown loop {loop!r}; use one of {LOOPS}')
    if loop != 'auto':
        return loop
    backend = backend or jax.default_backend()
    return 'python' if uses_conv and backend == 'cpu' else 'fori'


class Trainer:
    """Runs optax steps of a model ``apply_fn(params, x, *consts)`` on fixed data.

    Two ways to run the steps between two evaluation points (``loop``):
    ``fori``, one jitted ``lax.fori_loop`` (no per-step dispatch: best for
    small dense networks), or ``python``, a Python loop over one jitted step
    whose step index is an argument (compiled once); ``auto`` (default) takes
    ``python`` for convolutional models on the CPU, where XLA runs
    convolutions inside a loop body ~80x slower (:func:`choose_loop`), and
    ``fori`` otherwise. Both compute the same steps. The data and ``consts``
    (e.g. the initial parameters of a linearised model) are arguments of the
    jitted functions, not constants folded into them. With ``batch_size``
    set, step ``s`` uses the batch ``permutation(fold_in(key, s),
    n)[:batch_size]``: two trainers built with the same key (e.g. a network
    and its linearisation) see the same batches. With ``l2 > 0`` the
    objective is ``loss + l2 / 2 ||params - center||^2``: weight decay towards
    zero (``center`` None) or towards other parameters, e.g. the
    initialisation (L2 to init; Lee et al. 2020, Sec. 3; for the linearised
    network this turns gradient flow into kernel ridge regression from
    ``f_0``), given at :meth:`rebind` like the consts.

    Args:
        apply_fn: ``apply_fn(params, x, *consts) -> f(x)``.
        loss: ``loss(fx, y)`` (see :func:`get_loss`).
        optimizer: an optax transformation (see :func:`make_optimizer`).
        x: training inputs.
        y: training targets (one-hot probabilities for ``xent``).
        batch_size: mini-batch size; None = full batch.
        key: PRNG key for the batches.
        consts: extra arguments of ``apply_fn``.
        loop: ``auto``, ``fori`` or ``python`` (see above).
        l2: coefficient of the L2 penalty (0: none).
        center: the parameters the penalty pulls towards; None = zero.
    """

    def __init__(self, apply_fn: Callable, loss: Loss,
                 optimizer: optax.GradientTransformation, x: jnp.ndarray,
                 y: jnp.ndarray, batch_size: Optional[int] = None,
                 key: Optional[jax.Array] = None, consts: tuple = (),
                 loop: str = 'auto', l2: float = 0.0,
                 center: Optional[PyTree] = None):
        self.optimizer = optimizer
        self._data = (x, y, jax.random.PRNGKey(0) if key is None else key,
                      tuple(consts), center)
        l2 = float(l2)
        n = x.shape[0]
        full = batch_size is None or int(batch_size) >= n

        def batch(step, x, y, key):
            if full:
                return x, y
            idx = jax.random.permutation(jax.random.fold_in(key, step), n)
            idx = idx[:int(batch_size)]
            return x[idx], y[idx]

        def objective(p, xb, yb, consts, center):
            value = loss(apply_fn(p, xb, *consts), yb)
            if l2:
                moved = p if center is None else jax.tree.map(
                    jnp.subtract, p, center)
                value = value + 0.5 * l2 * sum(
                    jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(moved))
            return value

        def one_step(step, params, opt_state, x, y, key, consts, center):
            xb, yb = batch(step, x, y, key)
            grads = jax.grad(objective)(params, xb, yb, consts, center)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        def run(params, opt_state, start, stop, x, y, key, consts, center):
            def body(step, carry):
                return one_step(step, *carry, x, y, key, consts, center)
            return jax.lax.fori_loop(start, stop, body, (params, opt_state))

        self._objective = objective
        self._loop = loop
        self._resolved = None if loop == 'auto' else choose_loop(loop, False)
        self._run = jax.jit(run)
        self._step = jax.jit(one_step)

    def loop_kind(self, params: PyTree) -> str:
        """``fori`` or ``python`` for these parameters (cached)."""
        if self._resolved is None:
            x, y, _, consts, center = self._data
            jaxpr = jax.make_jaxpr(self._objective)(params, x[:1], y[:1],
                                                    consts, center)
            self._resolved = choose_loop(
                self._loop, _jaxpr_has(jaxpr, 'conv_general_dilated'))
        return self._resolved

    def rebind(self, key: Optional[jax.Array] = None,
               consts: Optional[tuple] = None,
               center: Optional[PyTree] = None) -> 'Trainer':
        """A trainer with another batch key / consts / L2 center, sharing
        the compiled loop."""
        new = copy.copy(self)
        x, y, old_key, old_consts, old_center = self._data
        new._data = (x, y, old_key if key is None else key,
                     old_consts if consts is None else tuple(consts),
                     old_center if center is None else center)
        return new

    def init(self, params: PyTree) -> TrainState:
        """The state at step 0."""
        return TrainState(params, self.optimizer.init(params), 0)

    def advance(self, state: TrainState, stop: int) -> TrainState:
        """Runs the steps ``state.step, ..., stop - 1``."""
        if stop <= state.step:
            return state
        params, opt_state = state.params, state.opt_state
        if self.loop_kind(params) == 'fori':
            params, opt_state = self._run(params, opt_state,
                                          jnp.asarray(state.step),
                                          jnp.asarray(stop), *self._data)
        else:
            for step in range(state.step, int(stop)):
                params, opt_state = self._step(jnp.asarray(step), params,
                                               opt_state, *self._data)
        return TrainState(params, opt_state, int(stop))


def linearized_apply_fn(apply_fn: Callable) -> Callable:
    """``f_lin(params, x, params_0)``: ``nt.linearize(apply_fn, params_0)``.

    The first-order Taylor expansion of the network around ``params_0``
    (Lee et al. 2019, eq. 8), with ``params_0`` an argument so that a jitted
    caller does not fold the initial parameters into its program.
    """
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top

    def f_lin(params, x, params_0):
        return nt.linearize(apply_fn, params_0)(params, x)

    return f_lin


def centered_apply_fn(apply_fn: Callable, scale: float = 1.0) -> Callable:
    """``f_c(params, x, params_0) = f(params, x) - scale * f(params_0, x)``.

    The centred network of Lee et al. 2020 (Sec. 3, "centering") at
    ``scale=1``: trained from ``params_0`` it starts from the zero function,
    so the random initial function no longer adds its variance to the
    predictions. Other scales centre in part (``0``: the network itself);
    training ``f_c`` on ``y`` is training ``f`` on ``y + scale * f(params_0,
    x)``, i.e. starting from the residual ``(1 - scale) f_0 - y``.
    ``params_0`` is an argument, as in :func:`linearized_apply_fn`.
    """
    scale = float(scale)

    def f_c(params, x, params_0):
        return apply_fn(params, x) - scale * jax.lax.stop_gradient(
            apply_fn(params_0, x))

    return f_c
