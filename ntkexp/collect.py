"""``ntkexp collect DIR...``: every run under the given directories, one table.

A run directory is any directory holding a ``status.json`` (DESIGN.md,
"Interfaces that others rely on"). The table is long-format: every row a run
wrote (``experiment, model, dataset, seed, metric, value`` plus its
parameters), with these columns added:

* ``run_dir``, ``status`` (ok / failed / running, or killed: recorded as
  running on this host but its process is gone), ``wall_time_s``,
  ``error``, ``config_hash``, ``finished``;
* ``experiment_run``: the experiment function (``experiment.run``), which
  ``ntkexp plot`` uses to find the figures of paper-figure configs;
* the parameters the run was swept over (its Hydra task overrides, e.g.
  ``experiment.diag_reg=1e-2`` -> column ``diag_reg``) when the rows do not
  already carry them.

A run that wrote no rows (failed early) still gets one row, with empty
``metric`` and ``value``, so the table shows every run and its status.

Outputs: ``OUT.parquet`` (the full table) and ``OUT.csv``, a summary over
seeds (``seed`` and ``dataset.seed``): the mean, standard deviation and count of ``value`` for each
experiment, model, dataset, parameter setting and metric, from runs with
status ok (a config that ran ok twice counts once: its latest run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from ntkexp import records
from ntkexp import sweep

# Columns that describe a run rather than a measurement setting.
RUN_COLUMNS = ('run_dir', 'status', 'wall_time_s', 'error', 'config_hash',
               'finished', 'experiment_run')
# Columns averaged over (or measured) in the summary, not grouped by.
# The seeds a summary averages over (records.SEED_COLUMNS) are not grouped by.
NOT_GROUPED = records.SEED_COLUMNS + ('value',) + RUN_COLUMNS
# Group choices (the rows name them: model, dataset, experiment columns).
_GROUP_KEYS = ('model', 'dataset', 'experiment', 'paths', 'hydra')
# Override keys that are not parameters of the measurement.
_IGNORED_OVERRIDES = ('paths', 'hydra', 'skip_done', 'kernel.progress',
                      'kernel.cache', 'kernel.jobs', 'kernel.executor',
                      'kernel.memory_gb', 'kernel.block_size', 'kernel.slurm')


def find_runs(dirs: Iterable[Path]) -> list[Path]:
    """Run directories (holding ``status.json``) under ``dirs``, sorted.

    A sweep directory's jobs that were skipped because the same config had
    already run ok (``jobs/<n>.json``: ``status`` 'skipped', ``same_as``
    that run) count with the run they point to, wherever it lies: the sweep's
    table holds every job it was asked for.
    """
    found = set()
    for folder in dirs:
        folder = Path(folder)
        if (folder / records.STATUS_JSON).exists():
            found.add(folder.resolve())
        if folder.is_dir():
            found.update(p.parent.resolve()
                         for p in folder.rglob(records.STATUS_JSON))
            found.update(_skipped_jobs_runs(folder))
    return sorted(found)


def _skipped_jobs_runs(folder: Path) -> set[Path]:
    """The earlier runs that the sweeps under ``folder`` skipped jobs for."""
    runs = set()
    for jobs in folder.rglob(sweep.JOBS_DIR):
        for record in sweep.read_job_records(jobs.parent).values():
            same_as = record.get('same_as') if record.get('status') == 'skipped' else None
            if same_as and (Path(same_as) / records.STATUS_JSON).exists():
                runs.add(Path(same_as).resolve())
    return runs


def _is_under(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _load_config(run_dir: Path) -> Any:
    """The run's config: ``config.yaml``, else Hydra's ``.hydra/config.yaml``."""
    for path in (run_dir / records.CONFIG_YAML, run_dir / '.hydra' / 'config.yaml'):
        if path.exists():
            try:
                return OmegaConf.load(path)
            except Exception:  # pylint: disable=broad-except
                continue
    return None


def _overrides(run_dir: Path) -> dict[str, Any]:
    """The run's swept parameters from Hydra's ``.hydra/overrides.yaml``.

    Group choices (``model=cnn``) and bookkeeping keys (``paths.*``,
    ``hydra.*``, kernel-engine settings) are left out; each remaining key
    ``a.b.c=v`` becomes column ``c`` (``a.b.c`` if two keys end alike),
    mapped to ``(a.b.c, v)``.
    """
    path = run_dir / '.hydra' / 'overrides.yaml'
    if not path.exists():
        return {}
    try:
        items = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError:
        return {}
    parsed = {}
    for item in items:
        key, sep, text = str(item).lstrip('+~').partition('=')
        if (not sep or key in _GROUP_KEYS or '/' in key or
                key.startswith(_IGNORED_OVERRIDES)):
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        parsed[key] = value
    leaves = [k.rsplit('.', 1)[-1] for k in parsed]
    return {(k.rsplit('.', 1)[-1] if leaves.count(k.rsplit('.', 1)[-1]) == 1
             else k): (k, v) for k, v in parsed.items()}


def _resolved(cfg: Any, key: str, value: Any) -> Any:
    """``key``'s value in the run's resolved ``cfg`` where it is a number,
    bool or string; else ``value`` (the override's text)."""
    if cfg is None:
        return value
    resolved = OmegaConf.select(cfg, key, default=None)
    return resolved if isinstance(resolved, (bool, int, float, str)) else value


def _base_from_config(cfg: Any) -> dict[str, Any]:
    """The shared columns of a run that wrote no rows, from its config."""
    if cfg is None:
        return {}
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    try:
        return runner.base_columns(cfg)
    except Exception:  # pylint: disable=broad-except
        return {}


def read_run(run_dir: Path) -> pd.DataFrame:
    """One run's rows with its run columns (one empty row if it wrote none)."""
    run_dir = Path(run_dir)
    status = records.read_status(run_dir) or {}
    cfg = _load_config(run_dir)
    frame = records.read_rows(run_dir)
    if frame.empty:
        frame = pd.DataFrame([{**_base_from_config(cfg), 'metric': None,
                               'value': np.nan}])
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    sources = runner.base_column_sources()
    for key, (dotted, value) in _overrides(run_dir).items():
        # Named like a row column of another key (dataset.seed beside the
        # init seed): a column of its own, with the config's value.
        own_column = sources.get(dotted.rsplit('.', 1)[-1], dotted) != dotted
        interpolated = isinstance(value, str) and ('${' in value or '$\\{' in value)
        if own_column or interpolated:  # dataset.seed='${seed}'
            value = _resolved(cfg, dotted, value)
        if own_column:
            frame[dotted] = value
        elif key not in frame.columns:
            frame[key] = value
    experiment_run = None
    if cfg is not None:
        experiment_run = OmegaConf.select(cfg, 'experiment.run', default=None)
    frame['run_dir'] = str(run_dir)
    frame['status'] = status.get('status', 'unknown')
    frame['wall_time_s'] = status.get('wall_time_s')
    frame['error'] = status.get('error')
    if not status:
        frame['error'] = (f'{records.STATUS_JSON} is unreadable (cut short or '
                          'not JSON); the rows written are kept')
    if records.process_gone(status):
        frame['status'] = 'killed'
        frame['error'] = (f"recorded as running, but its process (pid "
                          f"{status['pid']}) is gone: killed without recording "
                          'an end (SIGKILL, out of memory?); the rows written '
                          'before it are kept')
    frame['config_hash'] = status.get('config_hash')
    frame['finished'] = status.get('finished')
    frame['experiment_run'] = experiment_run
    return frame


def collect(dirs: Iterable[Path]) -> pd.DataFrame:
    """All runs under ``dirs`` as one long-format table (see the module doc).

    Args:
        dirs: directories to search (recursively) for run directories.

    Returns:
        The table; empty (with the base and run columns) if no run was found.
    """
    frames = [read_run(run_dir) for run_dir in find_runs(dirs)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(records.BASE_COLUMNS) + list(RUN_COLUMNS))
    frame = pd.concat(frames, ignore_index=True, sort=False)
    first = [c for c in records.BASE_COLUMNS if c in frame.columns]
    last = [c for c in RUN_COLUMNS if c in frame.columns]
    middle = [c for c in frame.columns if c not in first and c not in last]
    return records.arrow_safe(frame[first + middle + last])


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of ``value`` over seeds, per setting and metric.

    The seeds are the init ``seed`` and the data subset's ``dataset.seed``
    (``seed=0,1,2 'dataset.seed=${seed}'``); ``n_seeds`` counts their
    distinct pairs.

    Only runs with status ok count; of several ok runs of one config (same
    ``config_hash``), the latest.
    """
    ok = frame[(frame['status'] == 'ok') & frame['metric'].notna()]
    if ok.empty:
        return pd.DataFrame(columns=['experiment', 'metric', 'mean', 'std',
                                     'count'])
    if 'config_hash' in ok.columns and ok['config_hash'].notna().any():
        runs = (ok[['run_dir', 'config_hash', 'finished']].drop_duplicates('run_dir')
                .sort_values(['finished', 'run_dir'], na_position='first')
                .drop_duplicates('config_hash', keep='last'))
        ok = ok[ok['run_dir'].isin(runs['run_dir'])]
    keys = [c for c in ok.columns if c not in NOT_GROUPED]
    keys = [c for c in keys if ok[c].notna().any()]
    # Row parameters named like the summary's own columns get a prefix.
    clash = {c: f'param_{c}' for c in keys
             if c in ('mean', 'std', 'count', 'n_seeds')}
    if clash:
        ok = ok.rename(columns=clash)
        keys = [clash.get(c, c) for c in keys]
    ok = ok.assign(**{c: ok[c].map(lambda v: records.text_value(v) if isinstance(
        v, (list, tuple, dict)) else v) for c in keys if ok[c].dtype == object})
    aggregations = dict(mean=('value', 'mean'), std=('value', 'std'),
                        count=('value', 'count'))
    seeds = [c for c in records.SEED_COLUMNS if c in ok.columns]
    if seeds:  # distinct (seed, dataset.seed) pairs; a missing one is a value
        pairs = ok[seeds[0]].map(str)
        for column in seeds[1:]:
            pairs = pairs + '/' + ok[column].map(str)
        ok = ok.assign(_seeds=pairs)
        aggregations['n_seeds'] = ('_seeds', 'nunique')
    return ok.groupby(keys, dropna=False, sort=True).agg(**aggregations).reset_index()


def write(frame: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    """Writes ``OUT.parquet`` (all rows) and ``OUT.csv`` (the summary)."""
    out = Path(out)
    if out.suffix in ('.parquet', '.csv'):
        out = out.with_suffix('')
    out.parent.mkdir(parents=True, exist_ok=True)
    parquet, csv = out.with_name(out.name + '.parquet'), out.with_name(out.name + '.csv')
    records.arrow_safe(frame).to_parquet(parquet, index=False)
    summarize(frame).to_csv(csv, index=False)
    return parquet, csv


def main(dirs: list[Path], out: Path) -> None:
    """Entry of ``ntkexp collect``: prints what was gathered and where it went."""
    missing = [str(d) for d in dirs if not Path(d).exists()]
    if missing:
        print(f"ntkexp: error: no such directory: {', '.join(missing)}",
              file=sys.stderr)
        raise SystemExit(2)
    frame = collect(dirs)
    if frame.empty:
        print(f"ntkexp: error: no runs (directories with {records.STATUS_JSON}) "
              f"under {', '.join(map(str, dirs))}", file=sys.stderr)
        raise SystemExit(2)
    parquet, csv = write(frame, out)
    runs = frame.drop_duplicates('run_dir')
    counts = runs['status'].value_counts().to_dict()
    print(f"collected {int(frame['metric'].notna().sum())} rows from {len(runs)} runs ("
          + ', '.join(f'{n} {s}' for s, n in sorted(counts.items())) + ')')
    outside = [r for r in runs['run_dir'] if not any(
        _is_under(Path(r), Path(d)) for d in dirs)]
    if outside:
        print(f'  {len(outside)} of them outside {", ".join(map(str, dirs))}: the earlier '
              'runs of sweep jobs skipped as already run ok')
    for _, run in runs[runs['status'] != 'ok'].iterrows():
        print(f"  {run['status']}: {run['run_dir']}: {run['error']}")
    print(f'table:   {parquet}\nsummary: {csv}')
