"""Selecting and grouping the long-format rows that the figures draw.

Shared by the figure modules: which columns tell one line of a figure from
another (:func:`line_columns`) and the rows of each run's last step
(:func:`last_step`).
"""

from __future__ import annotations

import pandas as pd


#: Settings that make runs different lines (or bars) where they vary.
LINE_COLUMNS = ('parameterization', 'activation', 'depth', 'alpha', 'alpha_gamma',
                'normalize', 'center_scale', 'dataset', 'optimizer', 'momentum',
                'loss', 'lr_fraction', 'l2', 'l2_center')
#: More settings, which tell lines apart where they vary within one model (a
#: sweep over them): never averaged together as if they were seeds. Across
#: models alone (FC's W_std beside the ResNet's) the model tells them apart.
SETTING_COLUMNS = ('readout', 'filter_size', 'layout', 'block_style', 'k', 'W_std', 'b_std',
                   'V_std', 'n_train', 'classes', 'targets', 'target', 'standardize',
                   'zca', 'lr_kernel', 'lr', 'schedule', 'batch_size', 'steps',
                   'train_dtype')


def line_columns(frame: pd.DataFrame, without: tuple[str, ...] = ()) -> list[str]:
    """Columns that tell lines apart: model and, when they vary, more
    (not those of ``without``, e.g. ``lr_fraction`` where it is the x axis)."""
    columns = ['model']
    for column in LINE_COLUMNS + SETTING_COLUMNS:
        if column in without or column not in frame.columns:
            continue
        values = frame[column].astype(object)
        if column == 'normalize':  # a model without the option does not normalise
            values = values.where(values.notna(), False)
        # str of object values: lists hash, and NaN (the config's default,
        # where other runs override the key) counts as a value of its own.
        values = values.where(values.notna(), None).map(str)  # NaN and None alike
        if column in SETTING_COLUMNS and 'model' in frame.columns:
            varies = bool((values.groupby(frame['model'].astype(str)).nunique() > 1).any())
        else:
            varies = values.nunique() > 1
        if varies:
            columns.append(column)
    return columns


def last_step(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows at each run's last step (max ``step`` per run and width)."""
    if rows.empty or 'step' not in rows.columns:
        return rows
    keys = [c for c in ('run_dir', 'model', 'parameterization', 'width', 'seed')
            if c in rows.columns]
    last = rows.groupby(keys, dropna=False)['step'].transform('max')
    return rows[rows['step'] == last]
