"""Experiment ``ntk_at_init``: empirical NTK at initialisation vs the
infinite-width NTK (Jacot et al. 2018, Theorem 1)."""
import jax
import numpy as np
import pandas as pd
from hydra.utils import instantiate

import neural_tangents as nt


def run(cfg, run_dir, rows):
    data = instantiate(cfg.dataset)
    init_fn, apply_fn, kernel_fn = instantiate(cfg.model, out_dim=data.y_train.shape[1])
    x = data.x_train[:cfg.experiment.n_points]
    infinite = np.asarray(kernel_fn(x, None, 'ntk'))
    empirical = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0)
    table = []
    for seed in range(cfg.experiment.n_inits):
        _, params = init_fn(jax.random.PRNGKey(seed), x.shape)
        distance = (np.linalg.norm(np.asarray(empirical(x, None, params)) - infinite)
                    / np.linalg.norm(infinite))
        rows.add('relative_distance', distance, init=seed)
        table.append({'init': seed, 'relative_distance': distance})
    return pd.DataFrame(table)
