"""``ntkexp plot TABLE``: each experiment's standard figures from a collected table.

For each experiment in the table (a parquet or CSV from ``ntkexp collect``,
or run directories, collected on the fly), the figures module is looked up in
this order:

1. ``ntkexp.plots.<experiment>`` (e.g. ``ntkexp.plots.kernel_regression``);
2. ``ntkexp.plots.<module>`` where ``<module>`` is the experiment function's
   module (``experiment.run = ntkexp.experiments.finite_width.run`` ->
   ``ntkexp.plots.finite_width``), so a paper-figure config with its own
   ``experiment.name`` is drawn by its experiment's figures;
3. otherwise a generic figure: every metric against the parameter that varies
   most, one line per other setting.

Each module's ``plot(frame, out_dir) -> list[Path]`` receives that
experiment's rows from runs with status ok and writes PNG and PDF files.
Figures go to ``OUT/<experiment>/``.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ntkexp import collect as collect_mod
from ntkexp import records

# Columns that never serve as a figure's x axis or line label.
_NOT_PARAMS = set(collect_mod.NOT_GROUPED) | {'experiment', 'metric', 'mean',
                                              'std', 'count', 'n_seeds'}
#: Columns that number repetitions of one measurement (random initialisations,
#: draws): the generic figure averages over them (mean +- std) instead of
#: drawing a line per repetition.
REPLICATE_COLUMNS = ('init', 'draw', 'trial', 'repeat', 'replicate')


def read_table(path: Path) -> pd.DataFrame:
    """Reads a collected table: the parquet, or a CSV (the summary works too).

    A summary CSV has ``mean`` instead of ``value``; it is renamed so the
    figures modules see the same columns.
    """
    path = Path(path)
    if not path.exists() and path.with_suffix('.parquet').exists():
        path = path.with_suffix('.parquet')
    if not path.exists():
        raise FileNotFoundError(f'no table or run directory {path}; make a '
                                'table with `ntkexp collect RUN_DIR... -o TABLE` '
                                'or pass the run directories')
    if path.suffix == '.parquet':
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path)
    if 'value' not in frame.columns and 'mean' in frame.columns:
        frame = frame.rename(columns={'mean': 'value'})
    for column in ('experiment', 'metric', 'value'):
        if column not in frame.columns:
            raise ValueError(f"{path} has no column '{column}'; is it a table "
                             'from `ntkexp collect`?')
    return frame


def read_inputs(paths: Sequence[Path]) -> pd.DataFrame:
    """Tables (:func:`read_table`) and run directories, as one frame.

    A directory is collected on the fly, as ``ntkexp collect`` would (every
    run under it), so ``ntkexp plot runs/`` needs no table first.

    Raises:
        FileNotFoundError: a path that does not exist, or a directory with no
            runs in it.
        ValueError: a file that is not a collected table.
    """
    frames = []
    for path in map(Path, paths):
        if path.is_dir():
            frame = collect_mod.collect([path])
            if frame.empty:
                raise FileNotFoundError(
                    f'no runs (directories with {records.STATUS_JSON}) under '
                    f'{path}')
        else:
            frame = read_table(path)
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(
        frames, ignore_index=True, sort=False)


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of ok runs that hold a measurement."""
    if 'status' in frame.columns:
        frame = frame[frame['status'].isna() | (frame['status'] == 'ok')]
    return frame[frame['metric'].notna() & frame['value'].notna()]


def find_plotter(experiment: str, frame: pd.DataFrame) -> tuple[Callable | None, str]:
    """The ``plot`` function for an experiment, and the module it came from."""
    candidates = [f'ntkexp.plots.{experiment}']
    if 'experiment_run' in frame.columns:
        for target in frame['experiment_run'].dropna().unique():
            parts = str(target).split('.')
            if len(parts) >= 2:
                candidates.append(f'ntkexp.plots.{parts[-2]}')
    for name in dict.fromkeys(candidates):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:
                continue
            raise
        if hasattr(module, 'plot'):
            return module.plot, name
    return None, ''


def varying(frame: pd.DataFrame, exclude=()) -> list[str]:
    """Parameter columns that take more than one value, most values first."""
    columns = [c for c in frame.columns
               if c not in _NOT_PARAMS and c not in exclude and
               frame[c].astype(str).nunique() > 1]
    return sorted(columns, key=lambda c: -frame[c].astype(str).nunique())


def generic_lines(rows: pd.DataFrame) -> tuple[str, dict[str, pd.DataFrame]] | None:
    """The lines of one metric's generic figure, or None without a numeric
    parameter that varies.

    Returns:
        ``(x, {label: stats})``: the x column (the numeric parameter with the
        most values) and per line (the other varying parameters, up to three;
        label ``''`` for a single line) the ``mean`` and ``std`` of ``value``
        at each x, over seeds and :data:`REPLICATE_COLUMNS`.
    """
    params = varying(rows, exclude=REPLICATE_COLUMNS)
    numeric = [c for c in params if pd.api.types.is_numeric_dtype(rows[c])]
    if not numeric:
        return None
    x = numeric[0]
    series = [c for c in params if c != x][:3]
    groups = rows.groupby(series, dropna=False) if series else [((), rows)]
    lines = {}
    for key, group in groups:
        label = ', '.join(f'{c}={v}' for c, v in
                          zip(series, key if isinstance(key, tuple) else (key,)))
        lines[label] = group.groupby(x)['value'].agg(['mean', 'std'])
    return x, lines


def generic_plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every metric against the most varied numeric parameter (mean +- std
    over seeds and :data:`REPLICATE_COLUMNS`), one line per other setting."""
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric, rows in frame.groupby('metric'):
        params = varying(rows, exclude=REPLICATE_COLUMNS)
        fig, ax = plt.subplots(figsize=(5, 3.6))
        lines = generic_lines(rows)
        if lines is not None:
            x, series = lines
            for label, stats in series.items():
                ax.errorbar(stats.index, stats['mean'], yerr=stats['std'].fillna(0),
                            marker='o', ms=3, capsize=2, label=label or None)
            if (rows[x] > 0).all() and rows[x].max() / max(rows[x].min(), 1e-300) > 50:
                ax.set_xscale('log')
            ax.set_xlabel(x)
            if len(series) > 1:
                ax.legend(fontsize=7)
        else:
            labels = (rows[params].astype(str).agg(', '.join, axis=1)
                      if params else pd.Series(['all'] * len(rows), index=rows.index))
            stats = rows.groupby(labels)['value'].agg(['mean', 'std'])
            ax.bar(range(len(stats)), stats['mean'], yerr=stats['std'].fillna(0))
            ax.set_xticks(range(len(stats)), stats.index, rotation=30, ha='right',
                          fontsize=7)
        ax.set_ylabel(str(metric))
        ax.set_title(f"{rows['experiment'].iloc[0]}: {metric}", fontsize=9)
        fig.tight_layout()
        for suffix in ('png', 'pdf'):
            path = out_dir / f'{_safe(metric)}.{suffix}'
            fig.savefig(path, dpi=130)
            paths.append(path)
        plt.close(fig)
    return paths


def _safe(text: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_' else '_' for c in str(text))


def plot_table(frame: pd.DataFrame, out_dir: Path) -> dict[str, list[Path]]:
    """Draws every experiment of a table; returns the files per experiment.

    An experiment whose figures module raises is reported and skipped, so
    one broken figure does not lose the others.
    """
    out_dir = Path(out_dir)
    frame = usable_rows(frame)
    written: dict[str, list[Path]] = {}
    for experiment, rows in frame.groupby('experiment'):
        rows = rows.dropna(axis=1, how='all').reset_index(drop=True)
        plotter, module = find_plotter(str(experiment), rows)
        target = out_dir / _safe(experiment)
        if plotter is None:
            print(f"ntkexp plot: no figures module for experiment '{experiment}' "
                  f'(ntkexp/plots/{experiment}.py); drawing generic figures')
            plotter, module = generic_plot, 'generic'
        try:
            paths = list(plotter(rows, target) or [])
        except Exception as error:  # pylint: disable=broad-except
            print(f"ntkexp plot: error: {module} failed on '{experiment}': "
                  f'{type(error).__name__}: {error}', file=sys.stderr)
            traceback.print_exc(limit=3)
            written[str(experiment)] = []
            continue
        written[str(experiment)] = paths
        print(f'{experiment}: {len(paths)} files in {target} ({module})')
    return written


def main(tables: Path | Sequence[Path], out_dir: Path) -> None:
    """Entry of ``ntkexp plot``: tables or run directories (:func:`read_inputs`)."""
    tables = [tables] if isinstance(tables, (str, Path)) else list(tables)
    try:
        frame = read_inputs(tables)
    except (FileNotFoundError, ValueError) as error:
        print(f'ntkexp: error: {error}', file=sys.stderr)
        raise SystemExit(2) from None
    if usable_rows(frame).empty:
        print(f"ntkexp: error: {', '.join(map(str, tables))} has no rows from "
              'ok runs to plot', file=sys.stderr)
        raise SystemExit(2)
    written = plot_table(frame, out_dir)
    if any(not paths for paths in written.values()):
        raise SystemExit(1)

