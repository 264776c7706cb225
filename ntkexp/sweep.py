"""Sweep bookkeeping: one record per job, and a summary when the sweep ends.

A Hydra multirun (``ntkexp run -m ...``) runs its jobs through a launcher: in
this process (``basic``), in worker processes (``hydra/launcher=parallel``,
joblib) or as SLURM / submitit jobs (``hydra/launcher=slurm``,
``slurm_local``). Whatever the launcher, each job writes one small record

    <sweep dir>/jobs/<job number>.json   {job, overrides, status, run_dir, error, ...}

with ``status`` one of ``ok``, ``failed`` or ``skipped`` (the same config
already finished ok under ``paths.runs``; ``same_as`` names that run). A job
never raises out of the task function in a sweep, so one failing job neither
stops the sweep nor loses the others; its ``status.json`` says why it failed.

The main process learns the sweep directory and the list of jobs through the
Hydra callback :class:`SweepCallback` (added by :mod:`ntkexp.cli`), and after
the launcher returns, :func:`report` prints one line per job, writes
``<sweep dir>/sweep_summary.csv`` and gives the exit status: 1 if any job
failed or left no record (killed by the scheduler, out of memory, ...).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ntkexp import interrupts

JOBS_DIR = 'jobs'
SUMMARY_CSV = 'sweep_summary.csv'

# The sweep seen by this (main) process: set by SweepCallback.on_multirun_start.
_CURRENT: dict[str, Any] = {}


def reset() -> None:
    """Forgets the sweep of an earlier call (tests call the CLI repeatedly)."""
    _CURRENT.clear()


def current() -> dict[str, Any]:
    """The sweep started in this process: ``{'dir': Path, 'jobs': [...]}`` or {}."""
    return dict(_CURRENT)


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """The override lists of every job of a basic-sweeper multirun, in order.

    Mirrors ``BasicSweeper.sweep`` (task overrides plus ``hydra.sweeper.params``)
    so the summary can name jobs that never reported. Returns None when the
    sweep cannot be expanded here (another sweeper plugin).
    """
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # pylint: disable=g-import-not-at-top
        from hydra.core.override_parser.overrides_parser import OverridesParser  # pylint: disable=g-import-not-at-top
        sweeper = str(config.hydra.sweeper.get('_target_', ''))
        if not sweeper.endswith('BasicSweeper'):
            return None
        arguments = []
        params = config.hydra.sweeper.get('params', None) or {}
        for key, value in params.items():
            arguments.append(f'{key}={value}')
        arguments.extend(OmegaConf.to_container(config.hydra.overrides.task,
                                                resolve=False))
        overrides = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(overrides, None)
        return [list(job) for batch in batches for job in batch]
    except Exception:  # pylint: disable=broad-except
        return None


class SweepCallback(Callback):
    """Remembers the sweep directory and its jobs in the main process."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        _CURRENT.clear()
        _CURRENT['dir'] = sweep_dir
        _CURRENT['jobs'] = expected_jobs(config)


def write_job_record(sweep_dir: Path, job_num: int, record: dict[str, Any]) -> Path:
    """Writes ``<sweep_dir>/jobs/<job_num>.json`` (atomically)."""
    folder = Path(sweep_dir) / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{int(job_num)}.json'
    tmp = path.with_suffix(f'.tmp{os.getpid()}')
    tmp.write_text(json.dumps({'job': int(job_num), **record}, indent=2,
                              default=str) + '\n')
    os.replace(tmp, path)
    return path


def read_job_records(sweep_dir: Path) -> dict[int, dict[str, Any]]:
    """The job records of a sweep directory, by job number."""
    out = {}
    for path in sorted((Path(sweep_dir) / JOBS_DIR).glob('*.json')):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out[int(record.get('job', path.stem))] = record
    return out


def record_interrupted(error: BaseException, sweep_dir: Path | None = None,
                       wait_s: float = 10.0) -> list[int]:
    """Records the jobs that Ctrl-C or SIGTERM stopped with this (main)
    process, when the launcher's own workers could not (``parallel``: joblib
    kills its worker processes first, leaving their records 'running').

    A job still recorded as running is marked failed, in its job record and
    in its run's ``status.json`` (the rows it wrote are kept), once its
    process on this host is gone (waiting up to ``wait_s`` seconds for the
    launcher to end it). A job of another host (a SLURM node) is left alone:
    stopping this process does not stop it.

    Returns:
        The job numbers recorded as failed.
    """
    import socket  # pylint: disable=g-import-not-at-top
    import time  # pylint: disable=g-import-not-at-top
    from ntkexp import records  # pylint: disable=g-import-not-at-top
    sweep_dir = Path(sweep_dir or _CURRENT.get('dir') or '.')
    text = records.error_text(error)
    deadline = time.monotonic() + wait_s
    marked = []
    for num, record in read_job_records(sweep_dir).items():
        run_dir = record.get('run_dir')
        if record.get('status') != 'running' or not run_dir:
            continue
        status = records.read_status(Path(run_dir))
        if status is not None and status.get('status') != 'running':
            continue  # the job recorded its own end
        # Its process: from its status.json, or (killed before it wrote one)
        # from the job record.
        process = status or {'status': 'running', 'pid': record.get('pid'),
                             'device': {'host': record.get('host')}}
        if (process.get('device') or {}).get('host') != socket.gethostname():
            continue
        while not records.process_gone(process) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not records.process_gone(process):
            continue  # still running here
        if status is not None:
            status.update(status='failed', error=text, finished=datetime.datetime.now(
            ).isoformat(timespec='seconds'))
            records.write_json_atomic(Path(run_dir) / records.STATUS_JSON, status)
        write_job_record(sweep_dir, num, {**record, 'status': 'failed', 'error': text})
        marked.append(num)
    return marked


def _short(text: Any, width: int) -> str:
    text = '' if text is None else str(text).replace('\n', ' ')
    return text if len(text) <= width else text[:width - 3] + '...'


def _varying_overrides(jobs: list[list[str]]) -> set[str]:
    """The overrides that differ between jobs (all of them for a single job)."""
    if len(jobs) <= 1:
        return {o for job in jobs for o in job}
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            values.setdefault(override.partition('=')[0], set()).add(override)
    return {o for key, seen in values.items() if len(seen) > 1 for o in seen}


# How records.error_text starts the error of a job that Ctrl-C or SIGTERM stopped.
_STOPPED = tuple(f'{cls.__name__}:' for cls in (KeyboardInterrupt,
                                                 interrupts.Terminated))


def _stopping_job(records: dict[int, dict]) -> dict | None:
    """The record of the job that Ctrl-C or SIGTERM stopped, if any (the
    sweep stops there: jobs without a record then never started)."""
    for num in sorted(records):
        error = str(records[num].get('error') or '')
        if error.startswith(_STOPPED):
            return records[num]
    return None


def report(sweep_dir: Path | None = None,
           jobs: list[list[str]] | None = None,
           stream=None) -> int:
    """Prints one line per job of a sweep and writes ``sweep_summary.csv``.

    Args:
        sweep_dir: the sweep directory (default: the one this process started).
        jobs: the expected jobs' overrides, to name jobs that left no record.
        stream: where to print (default stdout).

    Returns:
        The exit status of the sweep: 0 if every job is ok or skipped, else 1.
    """
    stream = stream or sys.stdout
    if sweep_dir is None:
        sweep_dir = _CURRENT.get('dir')
        jobs = _CURRENT.get('jobs') if jobs is None else jobs
    if sweep_dir is None:
        return 0
    sweep_dir = Path(sweep_dir)
    records = read_job_records(sweep_dir)
    numbers = sorted(set(records) | set(range(len(jobs or []))))
    stopped = _stopping_job(records)
    table = []
    for num in numbers:
        record = records.get(num)
        if record is None:
            overrides = jobs[num] if jobs and num < len(jobs) else []
            record = {'job': num, 'overrides': overrides, 'status': 'no record',
                      'error': 'the job left no record (killed, out of memory '
                               'or timed out?); see the launcher logs'}
            if stopped is not None:
                record.update(status='not run', error=(
                    f"not started: the sweep was stopped at job #{stopped['job']} "
                    f"({_short(stopped.get('error'), 60)})"))
        table.append(record)
    shown = _varying_overrides([r.get('overrides') or [] for r in table])
    frame = pd.DataFrame([{
        'job': r['job'],
        'status': r.get('status'),
        'overrides': ' '.join(r.get('overrides') or []),
        'swept': ' '.join(o for o in (r.get('overrides') or []) if o in shown),
        'run_dir': r.get('run_dir') or r.get('same_as'),
        'error': r.get('error'),
        'wall_time_s': r.get('wall_time_s'),
    } for r in table])
    if not frame.empty and sweep_dir.is_dir():  # not made if the launcher failed
        frame.to_csv(sweep_dir / SUMMARY_CSV, index=False)
    counts = frame['status'].value_counts().to_dict() if not frame.empty else {}
    print(f'\nsweep: {len(frame)} jobs in {sweep_dir}: ' +
          ', '.join(f'{n} {s}' for s, n in sorted(counts.items())), file=stream)
    for _, row in frame.iterrows():
        where = row['error'] if row['status'] not in ('ok', 'skipped') else row['run_dir']
        if row['status'] == 'skipped':
            where = f'already ran ok in {row["run_dir"]}'
        print(f"  #{row['job']:<3} {row['status']:<9} {_short(row['swept'], 48):<48} "
              f'{_short(where, 120)}', file=stream)
    bad = [s for s in counts if s not in ('ok', 'skipped')]
    if bad:
        print('sweep: re-run the same command to retry the failed jobs; '
              'finished ones are skipped.', file=stream)
    stream.flush()
    return 1 if bad else 0
