"""Run records: the composed config, a status record and long-format rows.

Every run directory holds (DESIGN.md, "Interfaces that others rely on"):

* ``config.yaml``: the composed, resolved config of the run;
* ``status.json``: ``ok`` / ``failed`` (with the error) / ``running``, wall time,
  device, versions of jax, jaxlib, neural-tangents and ntkexp;
* ``rows.jsonl``: one JSON object per measured value, appended (and flushed) as
  soon as it is measured, so a run that dies loses nothing written before;
* ``rows.csv`` and ``rows.parquet``: the same rows as a table, written when the
  run ends, whether it succeeded or failed.

Rows are long-format: ``experiment, model, dataset, seed, metric, value`` plus
the run's parameters (width, depth, diag_reg, step, ...).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import platform
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

ROWS_JSONL = 'rows.jsonl'
ROWS_CSV = 'rows.csv'
ROWS_PARQUET = 'rows.parquet'
STATUS_JSON = 'status.json'
CONFIG_YAML = 'config.yaml'

# Columns every row starts with, in this order.
BASE_COLUMNS = ('experiment', 'model', 'dataset', 'seed', 'metric', 'value')


def _plain(value: Any) -> Any:
    """Converts numpy / jax scalars to JSON-serialisable Python values."""
    if isinstance(value, (np.generic,)):
        return value.item()
    if hasattr(value, 'shape') and getattr(value, 'shape') == ():
        return float(value)
    if isinstance(value, float) and math.isinf(value):
        return value  # json writes Infinity; pandas reads it back
    return value


class RowWriter:
    """Appends long-format rows to ``rows.jsonl`` as they are measured.

    Args:
        path: the ``rows.jsonl`` file (created or appended to).
        base: columns shared by every row of the run (experiment, model, ...).
    """

    def __init__(self, path: Path, base: Mapping[str, Any]):
        self.path = Path(path)
        self.base = dict(base)
        self.count = 0
        self._file = open(self.path, 'a', encoding='utf-8')

    def add(self, metric: str, value: Any, **params: Any) -> None:
        """Writes one row: ``metric`` = ``value`` at the given parameters."""
        row = dict(self.base)
        row.update({k: _plain(v) for k, v in params.items()})
        row['metric'] = metric
        row['value'] = float(_plain(value))
        self._file.write(json.dumps(row) + '\n')
        self._file.flush()
        self.count += 1

    def fill_sizes(self, data: Any) -> None:
        """Sets the ``n_train`` / ``n_test`` columns that the config left null
        (a whole split) to the sizes of ``data`` (a loaded ``Dataset``), so
        rows of ``dataset.n_test=null`` and of its explicit size agree."""
        for key, inputs in (('n_train', data.x_train), ('n_test', data.x_test)):
            if key in self.base and self.base[key] is None:
                self.base[key] = len(inputs)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> 'RowWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_rows(run_dir: Path) -> pd.DataFrame:
    """Reads a run's rows (from ``rows.jsonl``) as a DataFrame.

    Each line is parsed by :mod:`json`, so values come back bit for bit
    (``pandas.read_json`` rounds the last digit of floats by default, and
    turns columns with date-like names such as ``*_time`` into dates). A last
    line cut short by a crash while it was written is left out.
    """
    path = Path(run_dir) / ROWS_JSONL
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    lines = [line for line in path.read_text(encoding='utf-8').splitlines()
             if line.strip()]
    parsed = []
    for number, line in enumerate(lines):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            if number + 1 < len(lines):
                raise ValueError(f'{path}, line {number + 1}: not a JSON row')
            log.warning('%s: the last line is cut short (a crash while it was '
                        'written); left out', path)
    if not parsed:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    frame = pd.DataFrame.from_records(parsed)
    first = [c for c in BASE_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def text_value(value: Any) -> Any:
    """``value`` as text for a parquet column of mixed types (lists and
    dicts as JSON; None and NaN stay missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


#: The data subset's seed (``dataset.seed``), a row column beside the init seed.
DATA_SEED_COLUMN = 'dataset.seed'
#: Columns of seeds: the init seed and the data subset's.
SEED_COLUMNS = ('seed', DATA_SEED_COLUMN)


def arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Makes every column storable in parquet.

    Object columns of ints and floats become numeric; columns parquet cannot
    store as they are (mixed types, e.g. ``'inf'`` and 3 or True and 3)
    become text (lists as JSON). The seeds stay integers where some rows
    have none (a row of all seeds): pandas' nullable ``Int64``, so tables
    and figures say 3, not 3.0.
    """
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    frame = frame.copy()
    for column in SEED_COLUMNS:
        if column in frame.columns and frame[column].dtype.kind in 'fO':
            values = pd.to_numeric(frame[column], errors='coerce')
            whole = values.dropna()
            if values.isna().equals(frame[column].isna()) and (whole == whole.round()).all():
                frame[column] = values.astype('Int64')
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = frame[column].dropna()
        kinds = {type(v) for v in values}
        if kinds and kinds <= {int, float}:
            frame[column] = pd.to_numeric(frame[column])
            continue
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame[column] = frame[column].map(text_value)
    return frame


def write_tables(run_dir: Path) -> pd.DataFrame:
    """Writes ``rows.csv`` and ``rows.parquet`` from ``rows.jsonl``."""
    frame = read_rows(run_dir)
    frame.to_csv(Path(run_dir) / ROWS_CSV, index=False)
    arrow_safe(frame).to_parquet(Path(run_dir) / ROWS_PARQUET, index=False)
    return frame


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    import importlib.metadata as md  # pylint: disable=g-import-not-at-top
    out = {'python': platform.python_version()}
    for package in ('jax', 'jaxlib', 'neural-tangents', 'ntkexp', 'numpy'):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = 'not installed'
    return out


def cpu_name() -> str:
    """This machine's processor and its cores, e.g. ``AMD EPYC 7B13 (2
    cores)``: JAX names every CPU just ``cpu``."""
    model = ''
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as info:
            model = next((line.split(':', 1)[1].strip() for line in info
                          if line.startswith('model name')), '')
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or 'unknown CPU'
    return f'{model} ({os.cpu_count()} cores)'


def device_name(device: Any) -> str:
    """A JAX device as the benchmark tables name it: its kind for an
    accelerator (``NVIDIA H100 80GB HBM3``), the processor for a CPU."""
    return cpu_name() if device.platform == 'cpu' else str(device.device_kind)


def device_description() -> dict[str, Any]:
    """The JAX backend and devices this process computes on."""
    import jax  # pylint: disable=g-import-not-at-top
    devices = jax.local_devices()
    return {
        'platform': devices[0].platform,
        'kind': devices[0].device_kind,
        'count': len(devices),
        'host': socket.gethostname(),
        **({'cpu': cpu_name()} if devices[0].platform == 'cpu' else {}),
    }


def config_hash(cfg: DictConfig) -> str:
    """A stable hash of a run's resolved config (excluding paths and hydra)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in ('paths', 'hydra', 'skip_done'):
        container.pop(key, None)
    text = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Writes JSON to ``path`` through a temporary file and a rename."""
    tmp = Path(str(path) + f'.tmp{os.getpid()}')
    tmp.write_text(json.dumps(data, indent=2, default=str) + '\n')
    os.replace(tmp, path)


def unwrapped(error: BaseException) -> BaseException:
    """``error`` without Hydra's ``InstantiationException`` wrappers.

    ``hydra.utils.instantiate`` re-raises what a ``_target_`` (a dataset
    builder, a model) raised as an ``InstantiationException`` whose text is the
    original's ``repr`` (newlines escaped) plus the config key; the user should
    read the original error. Anything else is returned as it is.
    """
    from hydra.errors import InstantiationException  # pylint: disable=g-import-not-at-top
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def error_text(error: BaseException) -> str:
    """``'<Type>: <message>'`` of the error a user should read (:func:`unwrapped`)."""
    shown = unwrapped(error)
    if isinstance(shown, KeyboardInterrupt) and not str(shown):
        return 'KeyboardInterrupt: interrupted (Ctrl-C); the rows written before it are kept'
    return f'{type(shown).__name__}: {shown}'


class StatusRecord:
    """The ``status.json`` of a run: written at start, updated at the end."""

    def __init__(self, run_dir: Path, cfg: DictConfig):
        self.path = Path(run_dir) / STATUS_JSON
        self.start = time.time()
        self.data: dict[str, Any] = {
            'status': 'running',
            'error': None,
            'started': datetime.datetime.now().isoformat(timespec='seconds'),
            'finished': None,
            'wall_time_s': None,
            'config_hash': config_hash(cfg),
            'device': device_description(),
            'versions': versions(),
            'pid': os.getpid(),
        }
        write_json_atomic(self.path, self.data)

    def finish(self, error: BaseException | None = None, rows: int = 0,
               message: str | None = None) -> None:
        """Marks the run ok, or failed with ``error``'s message (``message``
        in its place if given) and traceback."""
        self.data['finished'] = datetime.datetime.now().isoformat(
            timespec='seconds')
        self.data['wall_time_s'] = round(time.time() - self.start, 3)
        self.data['rows'] = rows
        if error is None:
            self.data['status'] = 'ok'
        else:
            self.data['status'] = 'failed'
            self.data['error'] = message or error_text(error)
            self.data['traceback'] = ''.join(
                traceback.format_exception(type(error), error,
                                           error.__traceback__))
        write_json_atomic(self.path, self.data)


def process_gone(status: Mapping[str, Any]) -> bool:
    """Whether a run recorded as running lost its process: same host, and no
    process with its pid any more. A run ended by SIGKILL, the out-of-memory
    killer or a crash of the interpreter never records its end (SIGTERM and
    Ctrl-C do, :mod:`ntkexp.interrupts`). Runs of other hosts are not judged."""
    if status.get('status') != 'running' or not status.get('pid'):
        return False
    if (status.get('device') or {}).get('host') != socket.gethostname():
        return False
    try:
        os.kill(int(status['pid']), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # another user's process, a bad pid
        return False
    return False


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The status record of a run directory, or None if it has none."""
    path = Path(run_dir) / STATUS_JSON
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def finished_runs(runs_root: Path, digest: str) -> list[Path]:
    """The run directories under ``runs_root`` with this config hash and
    status ok, in path order."""
    runs_root = Path(runs_root)
    if not runs_root.exists():
        return []
    found = []
    for status_path in sorted(runs_root.rglob(STATUS_JSON)):
        status = read_status(status_path.parent)
        if (status and status.get('status') == 'ok' and
                status.get('config_hash') == digest):
            found.append(status_path.parent)
    return found
