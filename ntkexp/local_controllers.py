"""submitit's local controllers write to a log file, not to the terminal.

Every local submitit job (``kernel.jobs>1 kernel.executor=local``, a sweep with
``hydra/launcher=slurm_local``) is watched by a controller process,
``python -m submitit.local._local``, that inherits this process's stderr. The
controller turns SIGINT into ``KeyboardInterrupt``, and it gets one both from
the terminal's Ctrl-C (it is in the terminal's process group) and from
submitit's ``job.cancel()``. Each then printed two chained tracebacks of
submitit's code into the terminal, after ntkexp's own one-line message, although
the runs recorded the stop correctly.

Inside :func:`quiet` each controller starts with its stderr appended to
``controllers.log`` in the job folder (``<run>/kernel_jobs/``,
``<sweep>/.submitit/``). Nothing else changes: the controllers still get the
signals and stop their tasks, whose own logs stay where submitit puts them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Any, Iterator

LOG_NAME = 'controllers.log'


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Within the block, file descriptor 2 appends to ``path``.

    A child process started in the block keeps that stderr for its life; this
    process gets its own back on leaving the block.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, 'ab') as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def log_folder(job_folder: str | Path) -> Path:
    """The job folder without its submitit placeholders (``.submitit/%j`` ->
    ``.submitit``): where the controllers' log goes."""
    parts = Path(job_folder).parts
    first = next((k for k, part in enumerate(parts) if '%' in part), len(parts))
    return Path(*parts[:first])


def _quiet_start(start: Any, placeholders: set[Path], folder: str | Path,
                 *args: Any, **kwargs: Any) -> Any:
    if '%' in str(folder):
        placeholders.add(Path(folder))
    with stderr_to(log_folder(folder) / LOG_NAME):
        return start(folder, *args, **kwargs)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Controllers started in the block log to ``controllers.log``.

    On leaving it, a job folder submitit named by a placeholder and the
    controller created literally (``.submitit/%j``) is removed if empty.
    Nested blocks are fine; a submitit without ``start_controller`` (another
    version) is left as it is.
    """
    try:
        from submitit.local import local  # pylint: disable=g-import-not-at-top
    except ImportError:
        yield
        return
    start = getattr(local, 'start_controller', None)
    if start is None or getattr(start, 'ntkexp_quiet', False):
        yield
        return
    placeholders: set[Path] = set()
    wrapped = functools.partial(_quiet_start, start, placeholders)
    wrapped.ntkexp_quiet = True  # type: ignore[attr-defined]
    local.start_controller = wrapped
    try:
        yield
    finally:
        local.start_controller = start
        for folder in placeholders:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty


__all__ = ['LOG_NAME', 'log_folder', 'quiet', 'stderr_to']
