"""submitit's local controllers log to a file, not to the terminal
(:mod:`ntkexp.local_controllers`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import submitit
from submitit.local import local

from ntkexp import local_controllers


def test_log_folder_drops_submitit_placeholders():
    assert local_controllers.log_folder('/s/.submitit/%j') == Path('/s/.submitit')
    assert local_controllers.log_folder('/r/kernel_jobs') == Path('/r/kernel_jobs')
    assert local_controllers.log_folder('/s/%A_%a/x') == Path('/s')


def test_stderr_to_appends_and_restores(tmp_path, capfd):
    import os
    log = tmp_path / 'sub' / 'err.log'
    log.parent.mkdir()
    log.write_text('before\n')
    with local_controllers.stderr_to(log):
        os.write(2, b'inside\n')
    os.write(2, b'after\n')
    assert log.read_text() == 'before\ninside\n'
    assert capfd.readouterr().err == 'after\n'


def _cancel_a_running_job(folder: Path) -> submitit.Job:
    """Submits a sleeping job, cancels it once its task runs (submitit's
    cancel: SIGINT to the controller) and waits for the controller's end."""
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=2)
    job = executor.submit(time.sleep, 60)
    deadline = time.time() + 60
    while not job.paths.stdout.exists() and time.time() < deadline:
        time.sleep(0.1)  # the controller has started the task
    time.sleep(0.5)
    job.cancel(check=False)
    job._process.wait(timeout=60)  # pylint: disable=protected-access
    return job


def test_cancelled_job_without_quiet_prints_the_controllers_traceback(
        tmp_path, capfd):
    """Why :func:`quiet` exists: submitit's own behaviour."""
    _cancel_a_running_job(tmp_path / 'jobs')
    assert 'KeyboardInterrupt' in capfd.readouterr().err


def test_cancelled_job_under_quiet_logs_the_traceback(tmp_path, capfd):
    start = local.start_controller
    with local_controllers.quiet():
        with local_controllers.quiet():  # nested: one wrapper
            assert local.start_controller.ntkexp_quiet
            job = _cancel_a_running_job(tmp_path / 'jobs' / '%j')
            assert (tmp_path / 'jobs' / '%j').is_dir()  # the controller's mkdir
    assert local.start_controller is start  # restored
    assert 'Traceback' not in capfd.readouterr().err
    log = tmp_path / 'jobs' / local_controllers.LOG_NAME
    assert 'KeyboardInterrupt' in log.read_text()
    # The task's own logs are where submitit puts them.
    assert job.paths.stdout.parent == tmp_path / 'jobs' / str(job.job_id)
    # The controller's literal '%j' folder was empty and is gone.
    assert not (tmp_path / 'jobs' / '%j').exists()


def test_quiet_restores_the_function_after_an_error():
    start = local.start_controller
    with pytest.raises(RuntimeError):
        with local_controllers.quiet():
            raise RuntimeError('boom')
    assert local.start_controller is start
