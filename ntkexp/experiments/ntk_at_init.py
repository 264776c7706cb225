"""Experiment ``ntk_at_init``: empirical NTK at initialisation vs the
infinite-width NTK (Jacot et al. 2018, Theorem 1)."""
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from hydra.utils import instantiate

import neural_tangents as nt

from ntkexp.runner import ConfigError


def validate(cfg):
    """Checks the options before anything runs: one line naming the value and
    the fix, not a traceback from deep inside the run."""
    exp = cfg.experiment
    for key in ('n_points', 'n_inits'):
        if isinstance(exp[key], bool) or not isinstance(exp[key], int) or exp[key] < 1:
            raise ConfigError(f'experiment.{key}={exp[key]!r} must be an integer >= 1')
    n_train = cfg.dataset.get('n_train')
    if isinstance(n_train, int) and exp.n_points > n_train:
        raise ConfigError(f'experiment.n_points={exp.n_points} is more than the '
                          f'dataset.n_train={n_train} inputs it is taken from: lower '
                          'it or raise dataset.n_train')


def run(cfg, run_dir, rows):
    data = instantiate(cfg.dataset)
    init_fn, apply_fn, kernel_fn = instantiate(cfg.model, out_dim=data.y_train.shape[1])
    # JAX's default float (float64 under precision=float64), the dtype of the
    # parameters init_fn makes: convolutions refuse mixed dtypes.
    x = jnp.asarray(data.x_train[:cfg.experiment.n_points], dtype=float)
    infinite = np.asarray(kernel_fn(x, None, 'ntk'))
    empirical = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0)
    table = []
    n_inits = cfg.experiment.n_inits
    for init in range(cfg.seed * n_inits, (cfg.seed + 1) * n_inits):  # each seed its own
        _, params = init_fn(jax.random.PRNGKey(init), x.shape)
        distance = (np.linalg.norm(np.asarray(empirical(x, None, params)) - infinite)
                    / np.linalg.norm(infinite))
        # A row names what it was measured on: the n_points inputs, not n_train.
        rows.add('relative_distance', distance, init=init, n_points=len(x))
        table.append({'init': init, 'relative_distance': distance})
    return pd.DataFrame(table)
