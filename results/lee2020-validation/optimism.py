"""How optimistic is a kernel's test accuracy when ``diag_reg`` is picked on the test set?

Reads this folder's ``table.parquet`` (NNGP and NTK kernel regression at eight ``diag_reg``
values, each run with a validation split, ``dataset.n_valid``, and eight data subsets:
``seed=0..7 dataset.seed=${seed}``) and, per dataset, model, kernel and subset, compares

- ``test_best``: the best test accuracy over ``diag_reg`` (the regulariser picked on the
  test points themselves, as the tables did before ``dataset.n_valid``);
- ``test_at_val_best``: the test accuracy at the ``diag_reg`` best on the validation split
  (ties: the smallest ``diag_reg``, as ``ntkexp plot``'s architecture table);

``optimism = test_best - test_at_val_best`` (>= 0 by construction). Writes beside this file

- ``optimism_seeds.csv``: every subset's row;
- ``optimism.csv``: per dataset, model and kernel, the means over subsets, the optimism's
  std and 95 % bootstrap interval of its mean (``scipy.stats.bootstrap``, percentile, 4000
  resamples, generator seed 0), and ``test_sd``, the binomial standard deviation
  ``sqrt(p (1 - p) / n_test)`` of one test accuracy: the noise a pick on the test set can
  exploit.

Run from the repository root:

    .venv/bin/python results/lee2020-validation/optimism.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

import ntkexp  # noqa: F401  (neural-tangents on current JAX, for ntkexp.plots)

HERE = Path('results/lee2020-validation')
KEYS = ['dataset', 'model', 'kernel']


def per_subset(table: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset, model, kernel and subset (``seed``)."""
    table = table[table['status'] == 'ok'].assign(
        diag_reg=lambda t: pd.to_numeric(t['diag_reg'], errors='coerce'))
    sizes = table[table['metric'] == 'kernel_seconds'].set_index('run_dir')['n_valid']
    rows = table[np.isinf(table['t'].astype(float))]
    out = []
    for key, runs in rows.groupby(KEYS + ['seed']):
        test = runs[runs['metric'] == 'accuracy'].set_index('diag_reg')['value'].sort_index()
        valid = runs[runs['metric'] == 'val_accuracy'].set_index('diag_reg')['value'].sort_index()
        picked = valid.idxmax()  # the first (smallest diag_reg) of ties
        out.append({**dict(zip(KEYS + ['seed'], key)),
                    'n_train': int(runs['n_train'].iloc[0]),
                    'n_valid': int(sizes[runs['run_dir'].iloc[0]]),
                    'n_test': int(runs['n_test'].iloc[0]),
                    'test_best': test.max(), 'diag_reg_test': test.idxmax(),
                    'test_at_val_best': test[picked], 'diag_reg_val': picked,
                    'optimism': test.max() - test[picked]})
    return pd.DataFrame(out)


def summary(seeds: pd.DataFrame) -> pd.DataFrame:
    """Means over subsets per dataset, model and kernel, with the optimism's interval."""
    out = []
    for key, part in seeds.groupby(KEYS, sort=False):
        optimism = part['optimism'].to_numpy(float)
        interval = scipy.stats.bootstrap(
            (optimism,), np.mean, method='percentile', n_resamples=4000,
            rng=np.random.default_rng(0)).confidence_interval
        p = part['test_at_val_best'].mean()
        out.append({**dict(zip(KEYS, key)), 'subsets': len(part),
                    'n_train': part['n_train'].iloc[0], 'n_valid': part['n_valid'].iloc[0],
                    'n_test': part['n_test'].iloc[0],
                    'test_best': part['test_best'].mean(),
                    'test_at_val_best': p, 'optimism': optimism.mean(),
                    'optimism_std': optimism.std(ddof=1),
                    'optimism_lo': interval.low, 'optimism_hi': interval.high,
                    'same_pick': float((part['diag_reg_test'] == part['diag_reg_val']).mean()),
                    'test_sd': np.sqrt(p * (1 - p) / part['n_test'].iloc[0])})
    return pd.DataFrame(out)


def main() -> None:
    table = pd.read_parquet(HERE / 'table.parquet')
    seeds = per_subset(table)
    seeds.to_csv(HERE / 'optimism_seeds.csv', index=False)
    means = summary(seeds)
    means.to_csv(HERE / 'optimism.csv', index=False)
    with pd.option_context('display.width', 200, 'display.max_columns', 30):
        print(means.round(4).to_string(index=False))


if __name__ == '__main__':
    main()
