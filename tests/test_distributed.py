"""Kernel blocks as submitit jobs (issue 13): bit for bit, faults, re-runs.

The jobs run through submitit's local executor: real processes that rebuild
the kernel from the model config and share the on-disk block cache. Each job
imports JAX, so the tests keep jobs few and kernels tiny (a 2-layer CNN-VEC
kernel on 6x6 images, 10 train and 5 test points, 4x4 blocks: 6 train-train
blocks in the upper triangle + 6 test-train blocks).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
from hydra.utils import instantiate

from ntkexp import distributed
from ntkexp.experiments.kernel_regression import make_engine

GET = ('nngp', 'ntk')
BLOCK = 4
N_TRAIN, N_TEST = 10, 5
# ceil(10/4) = 3 row blocks: 3*4/2 = 6 upper-triangle blocks; 2 x 3 test blocks.
TOTAL_BLOCKS = 6 + 6


def _cfg(root: Path, jobs: int = 3):
    return OmegaConf.create({
        'model': {'_target_': 'ntkexp.models.cnn', 'depth': 2, 'width': 8,
                  'filter_size': 3, 'readout': 'flatten'},
        'kernel': {'memory_gb': 1.0, 'block_size': BLOCK, 'cache': True,
                   'progress': False, 'jobs': jobs, 'executor': 'local',
                   'slurm': {'partition': None, 'gpus_per_node': 1,
                             'timeout_min': 60, 'mem_gb': 4, 'account': None,
                             'additional_parameters': {}}},
        'paths': {'cache': str(root / 'cache')},
    })


def _kernel_fn(cfg):
    # out_dim=10 in the parent; the jobs rebuild it with out_dim=1: the
    # infinite-width kernels must not depend on it.
    return instantiate(cfg.model, out_dim=10)[2]


@pytest.fixture(scope='module')
def data():
    rng = np.random.RandomState(0)
    return rng.randn(N_TRAIN, 6, 6, 1), rng.randn(N_TEST, 6, 6, 1)


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory):
    """The one-process kernels (kernel.jobs=1 path), float64."""
    x_train, x_test = data
    cfg = _cfg(tmp_path_factory.mktemp('reference'), jobs=1)
    with jax.enable_x64(True):
        engine = make_engine(cfg, _kernel_fn(cfg), GET)
        return engine(x_train), engine(x_test, x_train)


def _run(cfg, data, run_dir):
    x_train, x_test = data
    with jax.enable_x64(True):
        engine = make_engine(cfg, _kernel_fn(cfg), GET)
        k_tt, k_st = distributed.compute_kernels(cfg, engine, x_train, x_test,
                                                 run_dir=run_dir, poll_s=0.5)
    return engine, k_tt, k_st


def _assert_same(kernels, reference):
    for got, want in zip(kernels, reference):
        for g in GET:
            assert got[g].dtype == np.float64
            assert np.array_equal(got[g], want[g]), g


def _block_files(cfg) -> dict[str, int]:
    """Every cached block file -> its mtime (ns)."""
    root = Path(cfg.paths.cache) / 'kernels'
    return {str(p.relative_to(root)): p.stat().st_mtime_ns
            for p in root.glob('*/b*/*.npz') if not p.name.startswith('.')}


def test_split_blocks_is_a_partition():
    blocks = [(0, i, j) for i in range(5) for j in range(i, 5)]  # 15 blocks
    groups = distributed.split_blocks(blocks, 4)
    assert [len(g) for g in groups] == [4, 4, 4, 3]
    assert [b for g in groups for b in g] == blocks  # disjoint, ordered, complete
    assert distributed.split_blocks(blocks[:2], 5) == [[blocks[0]], [blocks[1]]]
    assert distributed.split_blocks([], 3) == []


def test_slurm_job_array_parameters(tmp_path, monkeypatch):
    """kernel.slurm.* becomes one sbatch job array (fake sbatch, no cluster)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text('#!/bin/sh\nexit 0\n')
    (bin_dir / 'sbatch').write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/array.sh\n'
        'echo "Submitted batch job 4242"\n')
    for name in ('srun', 'sbatch'):
        os.chmod(bin_dir / name, 0o755)
    monkeypatch.setenv('PATH', f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    kcfg = OmegaConf.create({'slurm': {
        'partition': 'gpu', 'gpus_per_node': 1, 'timeout_min': 30,
        'mem_gb': 32, 'account': 'ntk', 'additional_parameters': {'qos': 'high'},
        'cpus_per_task': 8, 'constraint': 'a100'}})
    params = distributed.executor_parameters(kcfg, 'slurm')
    assert params['slurm_partition'] == 'gpu'
    assert params['slurm_constraint'] == 'a100'  # passed through
    fns = [distributed.BlockJob(k, None, 'm', GET, True, [], []) for k in range(3)]
    jobs = distributed.submit('slurm', tmp_path / 'logs', params, fns)
    assert [j.job_id for j in jobs] == ['4242_0', '4242_1', '4242_2']
    script = (tmp_path / 'array.sh').read_text()
    for line in ('--array=0-2', '--partition=gpu', '--account=ntk',
                 '--gpus-per-node=1', '--time=30', '--mem=32GB', '--qos=high',
                 '--cpus-per-task=8', '--constraint=a100', '--ntasks-per-node=1',
                 '--signal=USR2@', f'--output={tmp_path}/logs/'):
        assert line in script, line


def test_jobs_need_the_disk_cache(data, tmp_path):
    cfg = _cfg(tmp_path)
    cfg.kernel.cache = False
    engine = make_engine(cfg, _kernel_fn(cfg), GET)
    with pytest.raises(ValueError, match='kernel.cache=true'):
        distributed.compute_kernels(cfg, engine, *data, run_dir=tmp_path)


class _FakeJob:
    """A job that never finishes (for the waiting loop)."""

    def __init__(self):
        self.cancelled = False

    def done(self):
        return False

    def cancel(self, check=True):
        del check
        self.cancelled = True


def test_sigterm_while_waiting_cancels_jobs(tmp_path):
    """The waiting process stopped (e.g. its own time limit): jobs cancelled."""
    import signal
    import threading
    jobs = [_FakeJob(), _FakeJob()]
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(distributed.KernelJobError, match='re-run the same'):
        distributed._wait(jobs, 'local', lambda: 0, 0, 4, tmp_path,  # pylint: disable=protected-access
                          progress=False, poll_s=0.05)
    timer.join()
    assert all(job.cancelled for job in jobs)
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored


def test_local_jobs_equal_one_process_bit_for_bit(data, reference, tmp_path):
    cfg = _cfg(tmp_path, jobs=3)
    # A job is a fresh process: it must set the parent's matmul precision
    # (on GPUs JAX's default runs float32 products in TF32).
    before = jax.config.jax_default_matmul_precision
    jax.config.update('jax_default_matmul_precision', 'highest')
    try:
        engine, k_tt, k_st = _run(cfg, data, tmp_path / 'run')
    finally:
        jax.config.update('jax_default_matmul_precision', before)
    _assert_same((k_tt, k_st), reference)
    assert engine.computed_blocks == TOTAL_BLOCKS
    files = _block_files(cfg)
    assert len(files) == TOTAL_BLOCKS
    # Symmetry: only the upper triangle of train-train blocks is computed.
    train_key = engine.plan(np.asarray(data[0]), None)[1].root
    names = {p.stem for p in train_key.glob('*.npz')}
    assert names == {'0_0', '0_1', '0_2', '1_1', '1_2', '2_2'}
    logs = sorted((tmp_path / 'run' / distributed.JOB_LOG_DIR).glob('*_log.out'))
    assert len(logs) == 3
    assert all('done:' in p.read_text() for p in logs)
    assert all('jax_enable_x64=True, jax_default_matmul_precision=highest)'
               in p.read_text() for p in logs)
    # Everything cached: a re-run submits no job and gives the same kernel.
    engine, k_tt, k_st = _run(cfg, data, tmp_path / 'run2')
    _assert_same((k_tt, k_st), reference)
    assert engine.computed_blocks == 0
    assert not (tmp_path / 'run2' / distributed.JOB_LOG_DIR).exists()


def test_killed_job_then_rerun_recomputes_only_missing(data, reference,
                                                       tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, jobs=2)
    # Job 0 (blocks 0-5 of 12) SIGKILLs itself after writing its first block.
    monkeypatch.setenv(distributed.FAULT_ENV, '0:1:kill')
    with pytest.raises(distributed.KernelJobError) as error:
        _run(cfg, data, tmp_path / 'run1')
    message = str(error.value)
    assert 'died without a result' in message
    assert str(tmp_path / 'run1' / distributed.JOB_LOG_DIR) in message
    assert '5 still missing' in message
    partial = _block_files(cfg)
    assert len(partial) == TOTAL_BLOCKS - 5  # only job 0's unfinished blocks lost

    # The same command again: only the 5 missing blocks are computed.
    monkeypatch.delenv(distributed.FAULT_ENV)
    engine, k_tt, k_st = _run(cfg, data, tmp_path / 'run2')
    _assert_same((k_tt, k_st), reference)
    assert engine.computed_blocks == 5
    after = _block_files(cfg)
    assert len(after) == TOTAL_BLOCKS
    assert {k: after[k] for k in partial} == partial  # not rewritten
    logs = list((tmp_path / 'run2' / distributed.JOB_LOG_DIR).glob('*_log.out'))
    assert sorted(p.read_text().count(' written (') for p in logs) == [2, 3]


def test_failing_job_stops_the_run_and_keeps_blocks(data, tmp_path,
                                                     monkeypatch):
    cfg = _cfg(tmp_path, jobs=2)
    monkeypatch.setenv(distributed.FAULT_ENV, '1:1:raise')
    with pytest.raises(distributed.KernelJobError) as error:
        _run(cfg, data, tmp_path / 'run')
    message = str(error.value)
    assert 'kernel job 1 of 2' in message and 'failed' in message
    assert 'injected failure in kernel job 1' in message  # the job's own error
    assert str(tmp_path / 'run' / distributed.JOB_LOG_DIR) in message
    assert 'stay there' in message
    assert len(_block_files(cfg)) >= 1  # what was written stays


@pytest.mark.slow
def test_preempted_job_is_requeued_and_resumes(data, reference, tmp_path,
                                               monkeypatch):
    """Checkpointable: a preempted job is requeued and skips its cached blocks."""
    cfg = _cfg(tmp_path, jobs=2)
    monkeypatch.setenv(distributed.FAULT_ENV, '0:2:preempt')
    engine, k_tt, k_st = _run(cfg, data, tmp_path / 'run')
    _assert_same((k_tt, k_st), reference)
    assert engine.computed_blocks == TOTAL_BLOCKS
    logs = (tmp_path / 'run' / distributed.JOB_LOG_DIR)
    job0 = [p.read_text() for p in logs.glob('*_log.out')
            if '[kernel job 0]' in p.read_text()]
    assert len(job0) == 1
    assert 'checkpointed for requeue' in job0[0]
    assert 'done: 4 blocks computed, 2 already cached' in job0[0]


# End to end: `ntkexp run experiment=kernel_regression model=fc dataset=digits`.

def _run_job(root: Path, overrides: list[str]) -> tuple[pd.DataFrame, Path]:
    import hydra  # pylint: disable=g-import-not-at-top
    from ntkexp import cli, runner  # pylint: disable=g-import-not-at-top
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                     version_base='1.3'):
        cfg = hydra.compose('config', overrides=[
            'experiment=kernel_regression', 'model=fc', 'dataset=digits',
            f'paths.root={root}', 'kernel.progress=false', *overrides])
    run_dir = root / 'run'
    return runner.run_job(cfg, run_dir), run_dir


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[frame.metric != 'kernel_seconds']
    keys = [c for c in ('metric', 'kernel', 'diag_reg', 't') if c in frame]
    return frame.sort_values(keys)[keys + ['value']].reset_index(drop=True)


def _compare_runs(tmp_path: Path, overrides: list[str]) -> int:
    """Runs jobs=1 and jobs=3; asserts equal rows; returns the number of jobs."""
    one, _ = _run_job(tmp_path / 'one', ['kernel.jobs=1', *overrides])
    three, run_dir = _run_job(tmp_path / 'three',
                              ['kernel.jobs=3', 'kernel.executor=local',
                               *overrides])
    pd.testing.assert_frame_equal(_values(one), _values(three),
                                  check_exact=True)
    assert len(_values(one)) >= 2
    logs = list((run_dir / distributed.JOB_LOG_DIR).glob('*_log.out'))
    assert all('done:' in p.read_text() for p in logs)
    return len(logs)


def test_kernel_regression_rows_same_with_three_local_jobs(tmp_path):
    # 120 train / 40 test points in blocks of 40: 6 + 3 blocks, 3 jobs.
    jobs = _compare_runs(tmp_path, ['dataset.n_train=120', 'dataset.n_test=40',
                                    'kernel.block_size=40'])
    assert jobs == 3


@pytest.mark.slow
def test_kernel_regression_default_digits_three_local_jobs(tmp_path):
    """The issue's command at its default size (block size from memory_gb)."""
    assert 1 <= _compare_runs(tmp_path, []) <= 3


def test_slurm_executor_without_sbatch_is_a_config_error(tmp_path, monkeypatch):
    import shutil  # pylint: disable=g-import-not-at-top
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    import hydra  # pylint: disable=g-import-not-at-top
    from ntkexp import cli  # pylint: disable=g-import-not-at-top
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                     version_base='1.3'):
        cfg = hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.jobs=2', 'kernel.executor=slurm'])
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    with pytest.raises(runner.ConfigError, match="sbatch is not on this "
                       "machine's PATH.*kernel.executor=local"):
        runner.validate(cfg)
    monkeypatch.setattr(shutil, 'which', lambda name: f'/usr/bin/{name}')
    runner.validate(cfg)
