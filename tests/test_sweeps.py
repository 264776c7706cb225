"""Sweeps: launcher presets, the SLURM path end to end, failures and re-runs.

* The presets under conf/hydra/launcher/ compose, take their settings from the
  command line, the environment and a git-ignored local_*.yaml preset, and
  turn into the sbatch lines SLURM needs (submitit renders the script).
* ``ntkexp run -m hydra/launcher=slurm_local`` runs the hydra-submitit-launcher
  path with submitit's local executor: each job a separate process, as on a
  cluster; both runs finish ok and ``collect`` has rows for both widths.
* One failing job (run-time error, invalid value) neither stops nor loses the
  others; the sweep exits 1; a re-run skips the finished run and retries the
  failed ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ntkexp import cli
from ntkexp import collect
from ntkexp import local_controllers
from ntkexp import records
from ntkexp import sweep

NTKEXP = Path(sys.executable).parent / 'ntkexp'
TINY = ['dataset.n_train=40', 'dataset.n_test=40', 'kernel.progress=false']
# Two jobs, the second failing at run time: digits has 360 test images, which
# only loading the data finds out (a bad value the config check sees fails
# before the run, with no traceback).
ONE_FAILING = ['dataset.n_train=40', 'dataset.n_test=40,100000',
               'kernel.progress=false']


def compose_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        return compose('config', overrides=overrides, return_hydra_config=True)


def run_cli(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """Runs the installed ``ntkexp`` command; returns its exit status and output."""
    env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1',
               XLA_FLAGS='--xla_cpu_multi_thread_eigen=false')
    env.pop('NTKEXP_CACHE', None)
    env.pop('NTKEXP_HOME', None)
    return subprocess.run([str(NTKEXP), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def start_slow_sweep(tmp_path: Path, slow_experiment, *launcher: str,
                     **popen) -> subprocess.Popen:
    """``ntkexp run -m <slow experiment> seed=0,1`` (two jobs, each writing a
    row and then sleeping), started to be stopped by a signal."""
    env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1',
               **slow_experiment.env)
    env.pop('NTKEXP_HOME', None)
    return subprocess.Popen(
        [str(NTKEXP), 'run', '-m', *launcher, slow_experiment.override, 'seed=0,1',
         f'paths.root={tmp_path}'], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # A CI shell may start the tests with SIGINT ignored, which children
        # inherit (and Python then keeps); a terminal's Ctrl-C is not ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def statuses(root: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(root)): json.loads(p.read_text())
            for p in sorted(root.rglob(records.STATUS_JSON))}


# --- presets ---------------------------------------------------------------

@pytest.mark.parametrize('preset, target', [
    ('parallel', 'hydra_joblib_launcher.joblib_launcher.JoblibLauncher'),
    ('slurm', 'hydra_submitit_launcher.submitit_launcher.SlurmLauncher'),
    ('slurm_local', 'hydra_submitit_launcher.submitit_launcher.LocalLauncher'),
])
def test_presets_compose_and_resolve(preset, target, monkeypatch):
    monkeypatch.delenv('NTKEXP_JOBS', raising=False)
    cfg = compose_hydra([f'hydra/launcher={preset}'])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher['_target_'].endswith(target)
    if preset == 'parallel':
        assert launcher['n_jobs'] == 2
    else:
        assert isinstance(launcher['timeout_min'], int)
        assert launcher['submitit_folder'].endswith('/.submitit/%j')


def test_slurm_settings_from_command_line_and_environment(monkeypatch):
    monkeypatch.setenv('NTKEXP_SLURM_PARTITION', 'env-partition')
    monkeypatch.setenv('NTKEXP_SLURM_MEM_GB', '48')
    cfg = compose_hydra(['hydra/launcher=slurm', 'hydra.launcher.gpus_per_node=2',
                         'hydra.launcher.timeout_min=600'])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher['partition'] == 'env-partition'
    assert launcher['mem_gb'] == 48 and launcher['gpus_per_node'] == 2
    assert launcher['timeout_min'] == 600
    cfg = compose_hydra(['hydra/launcher=slurm', 'hydra.launcher.partition=gpu'])
    assert cfg.hydra.launcher.partition == 'gpu'


def test_slurm_preset_renders_the_sbatch_script(tmp_path, monkeypatch):
    """The preset's keys reach sbatch (as the submitit launcher maps them)."""
    import submitit  # pylint: disable=g-import-not-at-top
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf  # pylint: disable=g-import-not-at-top
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    (fake_bin / 'srun').write_text('#!/bin/sh\nexit 0\n')
    (fake_bin / 'srun').chmod(0o755)
    monkeypatch.setenv('PATH', f"{fake_bin}:{os.environ['PATH']}")
    cfg = compose_hydra([
        'hydra/launcher=slurm', 'hydra.launcher.partition=gpu',
        'hydra.launcher.gpus_per_node=4', 'hydra.launcher.mem_gb=64',
        'hydra.launcher.timeout_min=90', 'hydra.launcher.account=proj',
        'hydra.launcher.setup=[module load cuda]', f'paths.root={tmp_path}'])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop('_target_')
    # Same mapping as BaseSubmititLauncher.launch.
    executor = submitit.AutoExecutor(cluster='slurm', folder=params.pop('submitit_folder'),
                                     slurm_max_num_timeout=params.pop('max_num_timeout'))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f'slurm_{k}': v
                                  for k, v in params.items()})
    script = executor._executor._make_submission_file_text('python job.py', 'uid')  # pylint: disable=protected-access
    for line in ('#SBATCH --partition=gpu', '#SBATCH --gpus-per-node=4',
                 '#SBATCH --mem=64GB', '#SBATCH --time=90', '#SBATCH --account=proj',
                 '#SBATCH --cpus-per-task=8', 'module load cuda'):
        assert line in script, line


def test_local_preset_file_is_picked_by_name():
    """A git-ignored conf/hydra/launcher/local_<name>.yaml is a launcher choice."""
    name = f'local_pytest_{uuid.uuid4().hex[:8]}'
    path = cli.CONF_DIR / 'hydra' / 'launcher' / f'{name}.yaml'
    path.write_text('# @package hydra.launcher\ndefaults: [slurm, _self_]\n'
                    'partition: my-partition\ntimeout_min: 30\n')
    try:
        assert name in cli.launchers()
        cfg = compose_hydra([f'hydra/launcher={name}', 'hydra.launcher.mem_gb=8'])
        assert cfg.hydra.launcher.partition == 'my-partition'
        assert cfg.hydra.launcher.timeout_min == 30 and cfg.hydra.launcher.mem_gb == 8
        assert cfg.hydra.launcher._target_.endswith('SlurmLauncher')
        launcher = instantiate(cfg.hydra.launcher)
        assert launcher.params['partition'] == 'my-partition'
    finally:
        path.unlink()


def test_unknown_launcher_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(['run', '-m', 'hydra/launcher=slurmm'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and "unknown hydra/launcher 'slurmm'" in err
    assert 'slurm_local' in err and 'submitit_slurm' in err


def test_expected_jobs_mirrors_the_basic_sweeper():
    cfg = OmegaConf.create({'hydra': {
        'sweeper': {'_target_': 'hydra._internal.core_plugins.basic_sweeper.BasicSweeper',
                    'params': {'experiment.diag_reg': '1e-4,1e-2'}},
        'overrides': {'task': ['model.width=64,128', 'seed=0,1,2']}}})
    jobs = sweep.expected_jobs(cfg)
    assert len(jobs) == 12
    assert sorted(jobs[0]) == ['experiment.diag_reg=0.0001', 'model.width=64', 'seed=0']


def test_report_names_jobs_that_left_no_record(tmp_path, capsys):
    sweep.write_job_record(tmp_path, 0, {'overrides': ['seed=0'], 'status': 'ok',
                                         'run_dir': str(tmp_path / '0')})
    code = sweep.report(tmp_path, jobs=[['seed=0'], ['seed=1']])
    out = capsys.readouterr().out
    assert code == 1 and 'no record' in out and 'seed=1' in out
    assert (tmp_path / sweep.SUMMARY_CSV).exists()


def test_report_after_a_signal_says_not_run_and_survives_no_sweep_dir(
        tmp_path, capsys):
    sweep.write_job_record(tmp_path, 0, {
        'overrides': ['seed=0'], 'status': 'failed',
        'error': 'Terminated: got SIGTERM (signal 15)'})
    code = sweep.report(tmp_path, jobs=[['seed=0'], ['seed=1'], ['seed=2']])
    out = capsys.readouterr().out
    assert code == 1 and '1 failed, 2 not run' in out
    assert out.count('not started: the sweep was stopped at job #0 '
                     '(Terminated: got SIGTERM (signal 15))') == 2
    # The launcher failed before Hydra made the sweep directory: a summary,
    # no crash writing its CSV.
    missing = tmp_path / 'never_made'
    assert sweep.report(missing, jobs=[['seed=0']]) == 1
    assert 'no record' in capsys.readouterr().out and not missing.exists()


# --- end to end --------------------------------------------------------------

def test_slurm_path_end_to_end_with_submitit_local(tmp_path):
    """hydra-submitit-launcher with submitit's local executor: two processes."""
    result = run_cli(['run', '-m', 'hydra/launcher=slurm_local', 'model.depth=1,2',
                      *TINY, f'paths.root={tmp_path}'], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'sweep: 2 jobs' in result.stdout and '2 ok' in result.stdout
    runs = statuses(tmp_path / 'runs')
    assert len(runs) == 2 and all(s['status'] == 'ok' for s in runs.values())
    # Each job ran in its own process, started by submitit.
    assert len({s['pid'] for s in runs.values()} | {os.getpid()}) == 3
    assert list((tmp_path / 'runs').rglob('.submitit'))
    frame = collect.collect([tmp_path / 'runs'])
    assert set(frame['depth']) == {1, 2} and set(frame['status']) == {'ok'}
    accuracy = frame[frame['metric'] == 'accuracy']
    assert set(accuracy['kernel']) == {'nngp', 'ntk'} and len(accuracy) == 4
    assert accuracy['value'].between(0.3, 1.0).all()  # 10 digit classes, 40 points


def test_one_failing_job_neither_stops_nor_loses_the_others(tmp_path):
    """Run-time failure + invalid value in one sweep; then a re-run."""
    args = ['run', '-m', *ONE_FAILING, 'precision=float64,float16',
            f'paths.root={tmp_path}']
    first = run_cli(args, cwd=tmp_path)
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert 'sweep: 4 jobs' in first.stdout and '1 ok' in first.stdout
    assert '3 failed' in first.stdout
    runs = statuses(tmp_path / 'runs')
    assert sorted(s['status'] for s in runs.values()) == ['failed'] * 3 + ['ok']
    errors = ' '.join(str(s['error']) for s in runs.values())
    assert 'n_test=100000 is larger than the 360' in errors and 'precision' in errors
    # The run-time failure has its traceback; the ok run has its rows.
    assert any('Traceback' in s.get('traceback', '') for s in runs.values())
    (ok_dir,) = [d for d, s in runs.items() if s['status'] == 'ok']
    assert records.read_rows(tmp_path / 'runs' / ok_dir)['metric'].eq('accuracy').any()

    second = run_cli(args, cwd=tmp_path)
    assert second.returncode == 1
    assert 'skipped' in second.stdout and '1 skipped' in second.stdout
    assert '3 failed' in second.stdout
    runs_after = statuses(tmp_path / 'runs')
    # The failed jobs ran again (3 new failed runs); the ok one did not.
    assert sorted(s['status'] for s in runs_after.values()) == ['failed'] * 6 + ['ok']
    table = collect.collect([tmp_path / 'runs'])
    assert table.drop_duplicates('run_dir')['status'].value_counts().to_dict() == {
        'failed': 6, 'ok': 1}


def test_stopped_sweep_records_the_job_and_prints_the_summary(tmp_path,
                                                               slow_experiment):
    """Ctrl-C during a sweep's first job: the sweep stops there (exit 130),
    the job's record says so, and the summary names the job never run."""
    process = start_slow_sweep(tmp_path, slow_experiment)
    slow_experiment.signal_after_first_row(process, tmp_path / 'runs',
                                           signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert 'ntkexp: stopped: KeyboardInterrupt: interrupted (Ctrl-C)' in stderr
    assert 'Traceback' not in stderr
    assert 'sweep: 2 jobs' in stdout and '1 failed, 1 not run' in stdout
    assert 'not started: the sweep was stopped at job #0 (KeyboardInterrupt' in stdout
    (status,) = statuses(tmp_path / 'runs').values()
    assert status['status'] == 'failed' and status['rows'] == 1
    assert status['error'].startswith('KeyboardInterrupt: interrupted (Ctrl-C)')


def test_ctrl_c_to_a_slurm_local_sweep_prints_no_traceback(tmp_path,
                                                           slow_experiment):
    """A terminal's Ctrl-C reaches the whole process group: this process,
    submitit's local controllers and the jobs. The controllers'
    KeyboardInterrupt tracebacks go to ``.submitit/controllers.log``; the
    terminal shows ntkexp's lines only, and the jobs record the stop."""
    process = start_slow_sweep(tmp_path, slow_experiment, 'hydra/launcher=slurm_local',
                               start_new_session=True)
    slow_experiment.signal_after_first_row(process, tmp_path / 'runs',
                                           signal.SIGINT, group=True)
    # The controllers keep this stdout: it closes when the last one ends.
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert 'ntkexp: stopped: KeyboardInterrupt: interrupted (Ctrl-C)' in stderr
    assert 'Traceback' not in stderr and 'Traceback' not in stdout
    assert 'sweep: 2 jobs' in stdout
    (log,) = (tmp_path / 'runs').rglob(local_controllers.LOG_NAME)
    assert log.parent.name == '.submitit'
    assert 'KeyboardInterrupt' in log.read_text()
    assert not list((tmp_path / 'runs').rglob('%j'))  # submitit's empty folder
    stopped = [s for s in statuses(tmp_path / 'runs').values()
               if s['status'] == 'failed']
    assert stopped and all(s['error'].startswith('KeyboardInterrupt')
                           for s in stopped)


@pytest.mark.parametrize('signum, code, error', [
    (signal.SIGINT, 130, 'KeyboardInterrupt: interrupted (Ctrl-C)'),
    (signal.SIGTERM, 143, 'Terminated: got SIGTERM (signal 15)'),
])
def test_stopped_parallel_sweep_records_its_jobs(tmp_path, slow_experiment, signum,
                                                code, error):
    """Ctrl-C or SIGTERM to the main process of a ``parallel`` (joblib)
    sweep: joblib kills its workers before they can record anything, so the
    main process records the jobs as failed with the signal (job records and
    status.json), prints the summary, no traceback, and exits 128 + signal."""
    process = start_slow_sweep(tmp_path, slow_experiment, 'hydra/launcher=parallel')
    slow_experiment.signal_after_first_row(process, tmp_path / 'runs', signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stdout[-2000:] + stderr[-2000:]
    assert f'ntkexp: stopped: {error}' in stderr and 'Traceback' not in stderr
    assert 'sweep: 2 jobs' in stdout
    runs = statuses(tmp_path / 'runs')
    assert runs and all(s['status'] == 'failed' and s['error'].startswith(error)
                        for s in runs.values())
    (sweep_dir,) = {p.parent.parent for p in (tmp_path / 'runs').rglob('jobs/*.json')}
    jobs = sweep.read_job_records(sweep_dir)
    assert {r['status'] for r in jobs.values()} == {'failed'}
    assert (sweep_dir / sweep.SUMMARY_CSV).exists()


@pytest.mark.slow
def test_parallel_launcher_sweep(tmp_path):
    """The joblib preset: two jobs in worker processes, one failing."""
    result = run_cli(['run', '-m', 'hydra/launcher=parallel',
                      *ONE_FAILING,
                      f'paths.root={tmp_path}'], cwd=tmp_path)
    assert result.returncode == 1
    runs = statuses(tmp_path / 'runs')
    assert sorted(s['status'] for s in runs.values()) == ['failed', 'ok']


def test_slurm_launcher_without_slurm_is_one_line(tmp_path, monkeypatch, capsys):
    import shutil  # pylint: disable=g-import-not-at-top
    from ntkexp import cli  # pylint: disable=g-import-not-at-top
    launchers = tmp_path / 'hydra' / 'launcher'
    launchers.mkdir(parents=True)
    (launchers / 'local_x.yaml').write_text(
        '# @package hydra.launcher\ndefaults: [slurm, _self_]\npartition: gpu\n')
    (launchers / 'local_y.yaml').write_text('defaults: [parallel, _self_]\n')
    monkeypatch.setattr(cli, 'CONF_DIR', tmp_path)
    assert cli._slurm_launcher('slurm') and cli._slurm_launcher('local_x')  # pylint: disable=protected-access
    assert not cli._slurm_launcher('local_y')  # pylint: disable=protected-access
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    cli.check_slurm_available(['hydra/launcher=local_y', '-m', 'seed=0,1'])
    cli.check_slurm_available(['hydra/launcher=local_x', 'seed=0'])  # no -m
    with pytest.raises(SystemExit) as exit_:
        cli.check_slurm_available(['-m', 'hydra/launcher=local_x', 'seed=0,1'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        'ntkexp: error: hydra/launcher=local_x submits the jobs to SLURM, but '
        "sbatch and srun are not on this machine's PATH: run the sweep on the "
        "cluster's login node, or try it here with hydra/launcher=slurm_local")
    monkeypatch.setattr(shutil, 'which', lambda name: f'/usr/bin/{name}')
    cli.check_slurm_available(['-m', 'hydra/launcher=local_x', 'seed=0,1'])
