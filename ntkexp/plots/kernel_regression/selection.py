"""Picking ``diag_reg``: the best test score over it (Lee et al. 2020,
Table 1) or, where the runs scored a validation split (``dataset.n_valid``),
the test score at the value best on validation; ``architecture_table``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ntkexp.plots.kernel_regression.common import (
    largest_n_train, mean_std, ordered_models, rows_at_inf)


def validation_pick(stats: pd.DataFrame, valid: pd.DataFrame, metric: str):
    """The ``diag_reg`` of ``stats`` (a line's test means, indexed by
    ``diag_reg``) whose mean ``valid`` score (the line's ``val_<metric>``
    rows) is best, by :func:`pick_on_validation` as the tables pick it, or
    None when the line has no validation rows at its ``diag_reg`` values."""
    stats, select = pick_on_validation(stats.reset_index(), valid, ['diag_reg'], [],
                                        'mean', 'val_mean')
    if (stats['selected_on'] != 'validation').all():
        return None
    best = select.idxmin() if metric.endswith('mse') else select.idxmax()
    return stats.loc[best, 'diag_reg']


def architecture_table(frame: pd.DataFrame, metric: str = 'accuracy') -> pd.DataFrame:
    """Lee et al. 2020 Table 1 from the rows: the best ``metric`` over
    ``diag_reg`` per dataset, model, ZCA setting and kernel (t = inf).

    Seeds are averaged at each ``diag_reg`` before the best one is taken;
    with several ``n_train`` only each model's largest on each dataset enters
    (column ``n_train``: a model run only on fewer points keeps its row).
    Where the runs scored a validation split (``dataset.n_valid``: rows
    ``val_<metric>``), the best ``diag_reg`` is the one best on it, as Lee et
    al. 2020 tune it, and ``value`` is the test score there; otherwise it is
    the best on the test rows themselves, which is optimistic.

    Returns:
        Columns ``dataset, model, zca, stats_from, kernel, value, diag_reg,
        n_train`` (``zca`` NaN = none; ``stats_from`` 'subset' where rows
        predate it), models in Table-1 order (FC, CNN-VEC, CNN-GAP); with
        validation rows also ``val_value`` (the validation score at that
        ``diag_reg``) and ``selected_on`` ('validation', or 'test' for a
        setting run without a validation split).
    """
    columns = ['dataset', 'model', 'zca', 'stats_from', 'kernel', 'value',
               'diag_reg', 'n_train']
    rows = largest_n_train(rows_at_inf(frame), per_model=True)
    valid = rows[rows['metric'] == f'val_{metric}']
    rows = rows[rows['metric'] == metric]
    if rows.empty or 'kernel' not in rows.columns:
        return pd.DataFrame(columns=columns)
    keys = ['dataset', 'model', 'zca', 'stats_from', 'kernel']
    means = (table_keys(rows).groupby(keys + ['diag_reg'], dropna=False)
             .agg(value=('value', 'mean'), n_train=('n_train', 'max'))
             .reset_index())
    select = means['value']
    if not valid.empty:
        columns += ['val_value', 'selected_on']
        means, select = pick_on_validation(means, table_keys(valid), keys + ['diag_reg'],
                                            keys, 'value', 'val_value')
    pick = select.groupby([means[k] for k in keys], dropna=False)
    best = pick.idxmin() if metric.endswith('mse') else pick.idxmax()
    table = means.loc[best.to_numpy()].reset_index(drop=True)
    rank = {m: i for i, m in enumerate(ordered_models(table['model']))}
    table = table.assign(_rank=table['model'].astype(str).map(rank),
                         _zca=table['zca'].fillna(-1.0))
    table = table.sort_values(['dataset', '_rank', '_zca', 'stats_from', 'kernel'])
    return table.drop(columns=['_rank', '_zca']).reset_index(drop=True)[columns]


def pick_on_validation(stats: pd.DataFrame, valid: pd.DataFrame, by: list[str],
                        groups: list[str], score: str, name: str
                        ) -> tuple[pd.DataFrame, pd.Series]:
    """``stats`` (one ``score`` per ``by``, ``diag_reg`` among them) with the
    mean of the ``valid`` rows' values beside it as ``name`` and a column
    ``selected_on``, and the scores that pick each group's ``diag_reg``
    (per ``groups``; one group when empty): the validation means in a group
    that has any ('validation'), else ``score`` ('test'). ``valid`` may be
    empty."""
    scores = valid.groupby(by, dropna=False)['value'].mean().rename(name).reset_index()
    stats = stats.merge(scores, on=by, how='left')
    has_valid = (stats.groupby(groups, dropna=False)[name].transform('count') > 0
                 if groups else pd.Series(stats[name].notna().any(), stats.index))
    stats['selected_on'] = np.where(has_valid, 'validation', 'test')
    return stats, stats[score].where(~has_valid, stats[name])


def table_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with :func:`architecture_table`'s key columns, filled where
    a run predates them (``zca`` numeric, ``stats_from`` 'subset')."""
    rows = rows.copy()
    for column, default in (('dataset', ''), ('model', ''), ('zca', np.nan),
                            ('stats_from', 'subset'), ('diag_reg', np.nan),
                            ('n_train', np.nan)):
        if column not in rows.columns:
            rows[column] = default
    rows['zca'] = pd.to_numeric(rows['zca'], errors='coerce')
    rows['stats_from'] = rows['stats_from'].fillna('subset').astype(str)
    return rows


def selection_text(table: pd.DataFrame, metric: str) -> str:
    """How :func:`architecture_table` picked ``diag_reg``, for a title."""
    on = set(table['selected_on']) if 'selected_on' in table else {'test'}
    if on == {'validation'}:
        return f'test {metric} at the ' + r'$\varepsilon$ best on validation'
    best = 'highest' if metric == 'accuracy' else 'lowest'
    text = f'{best} test {metric} over ' + r'$\varepsilon$'
    return text + ('; where run, at the best on validation' if 'validation' in on else '')


def best_over_diag_reg(rows: pd.DataFrame, x: str | None = None,
                        valid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean +- std over seeds at each ``diag_reg`` (per ``x``), then the
    ``diag_reg`` with the largest mean (accuracy); indexed by ``x``, or one
    row without ``x``. With ``valid`` rows (the same line's
    ``val_accuracy``, ``dataset.n_valid``), the ``diag_reg`` with the largest
    validation mean instead, where there is one (column ``selected_on``:
    'validation' or 'test'; ``valid`` may be empty).
    Rows without a ``diag_reg`` (the kernel-geometry metrics) are just
    averaged, with ``diag_reg`` NaN."""
    if 'diag_reg' not in rows.columns or rows['diag_reg'].isna().all():
        return mean_std(rows, x).assign(diag_reg=np.nan)
    by = ([x] if x else []) + ['diag_reg']
    stats = rows.groupby(by)['value'].agg(['mean', 'std', 'count']).reset_index()
    select = stats['mean']
    if valid is not None:  # possibly empty: this line ran without validation
        stats, select = pick_on_validation(stats, valid, by, [x] if x else [],
                                            'mean', 'val_mean')
    if x is None:
        return stats.loc[[select.idxmax()]]
    best = stats.loc[select.groupby(stats[x]).idxmax()]
    return best.set_index(x).sort_index()
