"""A run stopped from outside (``kill``, a time limit, Ctrl-C) still records it.

By default SIGTERM ends a Python process at once: no ``finally`` runs, so a run
killed that way kept ``"status": "running"`` in its ``status.json`` forever and
never wrote its tables. Inside :func:`sigterm_raises` SIGTERM raises
:class:`Terminated` in the main thread instead, which unwinds like Ctrl-C's
``KeyboardInterrupt``: the runner marks the run failed with the signal's name,
closes its rows and writes its tables (:func:`ntkexp.runner.run_job`).

Python runs a signal handler between two bytecodes of the main thread, so a
run stops when the computation under way returns: at most one kernel block
(about ``kernel.block_seconds``) or one training segment.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(BaseException):
    """The process got SIGTERM (or another terminating signal).

    A ``BaseException``, like ``KeyboardInterrupt``, so that code catching
    ``Exception`` (a fallback to neural-tangents, a failed sweep job) does not
    swallow it.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f'got {signal.Signals(self.signum).name} '
                         f'(signal {self.signum}); the rows written before it '
                         'are kept')

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal."""
        return 128 + self.signum


def _raise_terminated(signum: int, frame) -> None:
    del frame
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[bool]:
    """Within the block SIGTERM raises :class:`Terminated`.

    Only in the main thread (Python delivers signals there only), and only
    where SIGTERM still has its default action: a handler someone else set is
    left alone (submitit's in SLURM jobs, which turns the scheduler's SIGTERM
    into a checkpoint and requeue).

    Yields:
        Whether the handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield False
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield True
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_code(error: BaseException) -> int | None:
    """The exit status for a run stopped by ``error``: 130 for Ctrl-C, 128 +
    the signal for :class:`Terminated`, None for anything else."""
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, Terminated):
        return error.exit_code
    return None


__all__ = ['Terminated', 'exit_code', 'sigterm_raises']
