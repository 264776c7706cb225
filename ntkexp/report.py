"""Small terminal tables for a run's rows."""

from __future__ import annotations

import pandas as pd

from ntkexp import records


def summary_table(frame: pd.DataFrame, max_rows: int = 40) -> str:
    """A compact table of a run's rows for the terminal.

    Uses the experiment's own summary (``frame.attrs['summary']``) when it
    returned one; otherwise pivots ``metric`` into columns over the parameters
    that vary between rows.

    Args:
        frame: the run's long-format rows.
        max_rows: rows shown at most.

    Returns:
        The table as text.
    """
    summary = frame.attrs.get('summary')
    if isinstance(summary, pd.DataFrame):
        return summary.to_string(max_rows=max_rows, float_format=_fmt)
    if frame.empty:
        return '(no rows)'
    fixed = set(records.BASE_COLUMNS)
    varying = [c for c in frame.columns
               if c not in fixed and frame[c].astype(str).nunique() > 1]
    if varying:
        table = frame.pivot_table(index=varying, columns='metric',
                                  values='value', aggfunc='mean')
    else:
        table = frame.groupby('metric')['value'].mean().to_frame().T
    return table.to_string(max_rows=max_rows, float_format=_fmt)


def _fmt(value: float) -> str:
    return f'{value:.4g}'
