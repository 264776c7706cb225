"""Directional data and neural anisotropy directions (NADs).

Ortiz-Jimenez, Modas, Moosavi-Dezfooli and Frossard 2020, "Neural Anisotropy
Directions" (NeurIPS 2020):

* **Directional data** (Sec. 2): a linearly separable distribution ``D(v)``
  whose label is carried by one unit direction ``v`` of the input space,

      x = epsilon * y * v + w,   y ~ U{-1, +1},   w ~ N(0, sigma^2 (I - v v^T)),

  so the noise lives in the orthogonal complement of ``v`` and the classifier
  ``sign(<x, v>)`` is perfect. The directions ``v`` are images of the 2-D DFT
  basis: :func:`fourier_direction`. (The authors' released code,
  ``directional_bias.py``, draws ``+-(epsilon'/2) v`` with ``epsilon' = 1`` and
  ``sigma = 3`` on 1x32x32 images; in this parameterisation that is
  ``epsilon = 0.5``.)
* **NADs** (Sec. 3): the eigenvectors of the expected outer product of the
  input gradient of the network's (scalar) output at initialisation,

      G = E_theta[ grad_x f(x; theta) grad_x f(x; theta)^T ],

  estimated by Monte Carlo over random initialisations (and, optionally,
  random evaluation points): :func:`input_gradients`, :func:`nads_from_gradients`.
  The authors' code (``nad_computation.py``) evaluates the gradient at one
  fixed point ``x0 ~ N(0, I)`` for all networks, by central finite differences
  with a step of 100 per pixel, and takes the principal components of the
  gradients (sklearn PCA, i.e. centred; ``E_theta[grad] = 0`` by the readout's
  sign symmetry, so both estimate the same ``G``).

Arrays here are numpy, images NHWC ``(H, W, C)``; a direction over ``C``
channels is the same 2-D pattern in every channel, normalised over the whole
image.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

PARTS = ('real', 'imag')
EVAL_POINTS = ('fixed', 'random')
GRADIENTS = ('exact', 'finite_difference')


# ---------------------------------------------------------------------------
# Fourier directions
# ---------------------------------------------------------------------------

def conjugate(i: int, j: int, height: int, width: int) -> tuple[int, int]:
    """The frequency ``(-i, -j)`` modulo the image size."""
    return (-i) % height, (-j) % width


def is_self_conjugate(i: int, j: int, height: int, width: int) -> bool:
    """Whether ``(i, j) == (-i, -j)`` (DC and Nyquist frequencies)."""
    return (i % height, j % width) == conjugate(i, j, height, width)


def canonical(i: int, j: int, height: int, width: int) -> tuple[int, int]:
    """The representative of ``{(i, j), (-i, -j)}``: the smaller pair.

    The real (cosine) and imaginary (sine) parts of the DFT basis image at
    ``(i, j)`` and at ``(-i, -j)`` span the same line, so a map of directions
    needs only one of them.
    """
    own = (i % height, j % width)
    return min(own, conjugate(i, j, height, width))


def signed(k: int, n: int) -> int:
    """Frequency index ``k`` in ``[0, n)`` as a centred one in ``[-n/2, n/2)``."""
    k %= n
    return k - n if k >= (n + 1) // 2 else k


def fourier_direction(height: int, width: int, i: int, j: int,
                      part: str = 'real', channels: int = 1) -> np.ndarray:
    """The unit-norm real or imaginary part of the 2-D DFT basis image ``(i, j)``.

    ``real``: ``cos(2 pi (i h / H + j w / W))``; ``imag``:
    ``sin(2 pi (i h / H + j w / W))``, for pixel ``(h, w)``, replicated over
    ``channels`` and normalised to unit Euclidean norm.

    Args:
        height: image height ``H``.
        width: image width ``W``.
        i: vertical frequency (any integer; taken modulo ``H``).
        j: horizontal frequency (taken modulo ``W``).
        part: ``real`` (cosine) or ``imag`` (sine).
        channels: number of channels ``C``.

    Returns:
        An ``(H, W, C)`` float64 array of unit norm.

    Raises:
        ValueError: unknown ``part``, or the imaginary part of a self-conjugate
            frequency (DC / Nyquist), which is identically zero.
    """
    if part not in PARTS:
        raise ValueError(f'fourier part {part!r} is invalid; use real or imag')
    if part == 'imag' and is_self_conjugate(i, j, height, width):
        raise ValueError(
            f'the imaginary part of the Fourier direction ({i}, {j}) on a '
            f'{height}x{width} image is zero (DC/Nyquist frequency); use '
            'part=real for it')
    h, w = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    phase = 2 * np.pi * (i * h / height + j * w / width)
    image = np.cos(phase) if part == 'real' else np.sin(phase)
    image = np.repeat(image[:, :, None], channels, axis=2)
    return image / np.linalg.norm(image)


def fourier_frequencies(height: int, width: int, stride: int = 1,
                        part: str = 'real') -> list[tuple[int, int]]:
    """Canonical frequencies of a (subsampled) grid, one per direction.

    The grid is ``{(i, j): i % stride == 0, j % stride == 0}``; conjugate pairs
    ``(i, j) ~ (-i, -j)`` give the same direction and are kept once (the
    smaller pair, :func:`canonical`). With ``part='imag'`` the self-conjugate
    frequencies (whose sine is zero) are dropped.

    Returns:
        Sorted list of ``(i, j)`` with ``0 <= i < H``, ``0 <= j < W``.
    """
    out = set()
    for i in range(0, height, stride):
        for j in range(0, width, stride):
            if part == 'imag' and is_self_conjugate(i, j, height, width):
                continue
            out.add(canonical(i, j, height, width))
    return sorted(out)


def fourier_basis(height: int, width: int, channels: int = 1
                  ) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """A real orthonormal basis of ``H x W`` images from the 2-D DFT.

    The cosines of all canonical frequencies and the sines of the canonical
    frequencies that are not self-conjugate: ``H * W`` orthonormal vectors.
    With ``channels > 1`` the vectors are replicated over channels (they then
    span only the channel-constant subspace).

    Returns:
        ``(basis, labels)``: ``basis`` of shape ``(H * W, H * W * C)``, one
        direction per row; ``labels[k] = (i, j, part)``.
    """
    rows, labels = [], []
    for part in PARTS:
        for i, j in fourier_frequencies(height, width, 1, part):
            rows.append(fourier_direction(height, width, i, j, part,
                                          channels).ravel())
            labels.append((i, j, part))
    return np.stack(rows), labels


# ---------------------------------------------------------------------------
# Directional data
# ---------------------------------------------------------------------------

def directional_noise(n: int, shape: Sequence[int], sigma: float,
                      rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of ``sigma * N(0, I)`` of the given image shape (not projected)."""
    return sigma * rng.standard_normal((n, *shape))


def balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels in ``{-1, +1}``: ``ceil(n/2)`` of ``+1``, shuffled."""
    y = np.where(np.arange(n) < (n + 1) // 2, 1.0, -1.0)
    return rng.permutation(y)


def directional_data(v: np.ndarray, labels: np.ndarray, noise: np.ndarray,
                     epsilon: float) -> np.ndarray:
    """Inputs of ``D(v)``: ``epsilon * y * v + (I - v v^T) noise``.

    Args:
        v: unit direction, any shape (e.g. ``(H, W, C)``).
        labels: ``(n,)`` labels in ``{-1, +1}``.
        noise: ``(n, *v.shape)`` isotropic noise ``sigma * N(0, I)``; its
            component along ``v`` is removed, so the result's noise is
            ``N(0, sigma^2 (I - v v^T))``.
        epsilon: the signal amplitude along ``v``.

    Returns:
        ``(n, *v.shape)`` float64 inputs with ``<x_k, v> = epsilon * y_k``.
    """
    flat_v = np.asarray(v, np.float64).ravel()
    flat_v = flat_v / np.linalg.norm(flat_v)
    w = np.asarray(noise, np.float64).reshape(len(noise), -1)
    w = w - np.outer(w @ flat_v, flat_v)
    x = epsilon * np.asarray(labels, np.float64)[:, None] * flat_v + w
    return x.reshape(noise.shape)


def sample_directional(v: np.ndarray, n: int, epsilon: float, sigma: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples ``(x, y)`` of ``D(v)`` (balanced labels)."""
    y = balanced_labels(n, rng)
    noise = directional_noise(n, np.shape(v), sigma, rng)
    return directional_data(v, y, noise, epsilon), y


# ---------------------------------------------------------------------------
# NADs
# ---------------------------------------------------------------------------

def fixed_point(key, input_shape: Sequence[int], dtype=np.float32) -> np.ndarray:
    """The evaluation point ``x0 ~ N(0, I)`` that :func:`input_gradients` uses
    with ``eval_point='fixed'`` and the same ``key`` (shape ``input_shape``)."""
    import jax  # pylint: disable=g-import-not-at-top
    key_x0, _ = jax.random.split(key)
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        x0 = jax.random.normal(key_x0, (1, *tuple(int(s) for s in input_shape)),
                               dtype)
    return np.array(x0[0], np.float64)


def input_gradients(init_fn: Callable, apply_fn: Callable,
                    input_shape: Sequence[int], n_networks: int, key,
                    eval_point: str = 'fixed', points_per_network: int = 1,
                    gradient: str = 'exact', fd_scale: float = 100.0,
                    dtype=np.float32) -> np.ndarray:
    """Input gradients of a scalar-output network at random initialisations.

    For each of ``n_networks`` independent initialisations ``theta_k =
    init_fn(key_k)`` and each evaluation point ``x``, the gradient
    ``grad_x f(x; theta_k)`` of the first output.

    Args:
        init_fn, apply_fn: the stax pair (``apply_fn(params, x)`` of shape
            ``(n, out)``; only output 0 is used).
        input_shape: one input's shape, e.g. ``(H, W, C)``.
        n_networks: number of initialisations.
        key: a ``jax.random`` key.
        eval_point: ``fixed``: one point ``x0 ~ N(0, I)`` for every network
            (the authors' code); ``random``: fresh ``x ~ N(0, I)`` for every
            network and point.
        points_per_network: evaluation points per network (``random`` only;
            ``fixed`` uses 1).
        gradient: ``exact`` (autodiff) or ``finite_difference``: central
            differences ``(f(x + s e_i) - f(x - s e_i)) / (2 s)`` per input
            coordinate with ``s = fd_scale`` (the authors used ``s = 100``).
        fd_scale: the finite-difference step ``s``.
        dtype: float dtype of parameters and inputs.

    Returns:
        ``(n_networks * points, prod(input_shape))`` gradients (float64).
    """
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    if eval_point not in EVAL_POINTS:
        raise ValueError(f'eval_point={eval_point!r}; use one of {EVAL_POINTS}')
    if gradient not in GRADIENTS:
        raise ValueError(f'gradient={gradient!r}; use one of {GRADIENTS}')
    input_shape = tuple(int(s) for s in input_shape)
    d = int(np.prod(input_shape))
    points = 1 if eval_point == 'fixed' else int(points_per_network)
    _, key_nets = jax.random.split(key)

    def cast(tree):
        return jax.tree_util.tree_map(
            lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating)
            else a, tree)

    def one_network(k, x0):
        k_init, k_x = jax.random.split(k)
        _, params = init_fn(k_init, (points, *input_shape))
        params = cast(params)
        if eval_point == 'fixed':
            x = x0
        else:
            x = jax.random.normal(k_x, (points, *input_shape), dtype)
        if gradient == 'exact':
            # Examples are independent, so the gradient of the sum is the
            # stack of per-example gradients.
            g = jax.grad(lambda z: jnp.sum(apply_fn(params, z)[:, 0]))(x)
            return g.reshape(points, d)
        # Central differences, all points and coordinates in one batch.
        eye = jnp.eye(d, dtype=dtype).reshape(1, d, *input_shape) * fd_scale
        shifted = jnp.concatenate([x[:, None] + eye, x[:, None] - eye], axis=1)
        f = apply_fn(params, shifted.reshape(points * 2 * d, *input_shape))
        f = f[:, 0].reshape(points, 2, d)
        return (f[:, 0] - f[:, 1]) / (2 * fd_scale)

    # One jitted call per network: vmapping over parameters turns
    # convolutions into grouped ones, which XLA runs slowly on CPU. x64 is
    # set to match ``dtype``: neural-tangents' Conv rescales by a float64
    # constant when x64 is on, which breaks float32 convolutions.
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        single = jax.jit(one_network)
        keys = jax.random.split(key_nets, int(n_networks))
        x0 = jax.numpy.asarray(fixed_point(key, input_shape, dtype)[None], dtype)
        out = [np.asarray(single(k, x0), np.float64) for k in keys]
    return np.concatenate(out).reshape(-1, d)


def gradient_covariance(gradients: np.ndarray) -> np.ndarray:
    """The (uncentred) second moment ``G = mean_k g_k g_k^T``."""
    g = np.asarray(gradients, np.float64)
    return g.T @ g / len(g)


def nads_from_gradients(gradients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors (the NADs) of ``G = mean g g^T``.

    Args:
        gradients: ``(m, d)`` sampled input gradients.

    Returns:
        ``(eigenvalues, nads)``: ``eigenvalues`` ``(d,)`` in decreasing order;
        ``nads`` ``(d, d)`` with ``nads[k]`` the unit eigenvector of
        eigenvalue ``k``, signed so that its largest-magnitude entry is
        positive.
    """
    evals, evecs = np.linalg.eigh(gradient_covariance(gradients))
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0.0, None)
    nads = evecs[:, order].T
    peak = nads[np.arange(len(nads)), np.argmax(np.abs(nads), axis=1)]
    nads = nads * np.where(peak < 0, -1.0, 1.0)[:, None]
    return evals, nads


def participation_ratio(eigenvalues: Iterable[float]) -> float:
    """``(sum l)^2 / (d * sum l^2)`` in ``(0, 1]``: 1 for a flat spectrum.

    A measure of isotropy of ``G``: ``1/d`` when one direction carries all the
    gradient energy, 1 when all ``d`` eigenvalues are equal.
    """
    lam = np.asarray(list(eigenvalues), np.float64)
    return float(lam.sum() ** 2 / (len(lam) * np.sum(lam ** 2)))


def directional_energy(covariance: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``v^T G v / (tr G / d)`` for each row ``v`` of ``directions``.

    The gradient energy at initialisation along each direction, relative to
    the average over directions: 1 everywhere for an isotropic architecture.
    """
    cov = np.asarray(covariance, np.float64)
    dirs = np.asarray(directions, np.float64).reshape(len(directions), -1)
    mean = np.trace(cov) / cov.shape[0]
    return np.einsum('kd,de,ke->k', dirs, cov, dirs) / mean
