"""Per-image Jacobians of a WRN-10-4, two batchings, against neural-tangents.

The empirical NTK (10 logits traced, 8 images of 32x32x3) by
neural-tangents' Jacobian contraction and structured derivatives, and by
forming the per-image Jacobians ourselves with the logits vmapped and the
images either mapped (``lax.map``, one image per convolution) or vmapped,
then contracting them. Prints seconds (median of 3 after a warm-up), the
ratio to Jacobian contraction and the relative difference.

Usage (``results/bench/session4/README.md``)::

    python docs/scripts/per_image_jacobians.py
"""

import numpy as np

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import jax
import jax.numpy as jnp
import neural_tangents as nt

from ntkexp import bench, models

N, LOGITS = 8, 10


def image_jacobian(apply_fn, x_i, params):
    """Each logit's gradient with respect to ``params`` at one image."""
    logits, vjp = jax.vjp(lambda p: apply_fn(p, x_i[None]), params)
    cotangents = jnp.eye(LOGITS, dtype=logits.dtype)[:, None, :]
    return jax.vmap(vjp)(cotangents)[0]


def ntk_from_jacobians(apply_fn, x, params, mapped):
    one = lambda x_i: image_jacobian(apply_fn, x_i, params)  # noqa: E731
    jac = jax.lax.map(one, x) if mapped else jax.vmap(one)(x)
    return sum(jnp.einsum('ik...,jk...->ij', leaf, leaf, precision='highest')
               for leaf in jax.tree_util.tree_leaves(jac)) / LOGITS


def main():
    init_fn, apply_fn, _ = models.wrn(depth=10, width=64, out_dim=LOGITS)
    x = bench._images(N, 32)  # pylint: disable=protected-access
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    methods = {}
    for impl in ('JACOBIAN_CONTRACTION', 'STRUCTURED_DERIVATIVES'):
        fn = jax.jit(nt.empirical_ntk_fn(
            apply_fn, implementation=nt.NtkImplementation[impl], vmap_axes=0))
        methods[impl] = lambda fn=fn: fn(x, None, params)
    for mapped in (True, False):
        fn = jax.jit(lambda a, p, m=mapped: ntk_from_jacobians(apply_fn, a, p, m))
        methods['images ' + ('lax.map' if mapped else 'vmap')] = (
            lambda fn=fn: fn(x, params))
    reference = None
    for name, call in methods.items():
        seconds, out = bench.timed(call, 3)
        out = np.asarray(out)
        if reference is None:
            reference, t_ref = out, seconds
        print(f'{name}: {seconds:.3f} s, {t_ref / seconds:.2f}x Jacobian '
              f'contraction, rel. diff '
              f'{np.abs(out - reference).max() / np.abs(reference).max():.1e}')


if __name__ == '__main__':
    main()
