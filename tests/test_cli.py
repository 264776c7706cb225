"""The default job, run records and bad input, as a user runs them."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

import ntkexp
from ntkexp import cli, interrupts, records, runner, solve

REPO = Path(__file__).resolve().parent.parent
NTKEXP = [sys.executable, '-m', 'ntkexp.cli']


def _compose(overrides):
    with initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        return compose('config', overrides=overrides)


def _ntkexp(args, tmp_path, timeout=300):
    env = dict(os.environ, NTKEXP_HOME=str(tmp_path), JAX_PLATFORMS='cpu')
    return subprocess.run(NTKEXP + args, capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


@pytest.fixture(scope='module')
def default_run(tmp_path_factory):
    """The default job (`ntkexp run`), run once in-process."""
    root = tmp_path_factory.mktemp('default')
    cfg = _compose([f'paths.root={root}'])
    run_dir = root / 'run'
    frame = runner.run_job(cfg, run_dir)
    return cfg, run_dir, frame


def test_default_job_is_fc_kernel_regression_on_digits(default_run):
    cfg, _, frame = default_run
    assert cfg.experiment.name == 'kernel_regression'
    assert runner.target_name(cfg.model) == 'fc'
    assert runner.target_name(cfg.dataset) == 'digits'
    acc = frame[frame.metric == 'accuracy'].set_index('kernel')['value']
    # Kernel regression with an FC ReLU NNGP/NTK on 1000 digits: ~97-98%.
    assert set(acc.index) == {'nngp', 'ntk'}
    assert (acc > 0.93).all() and (acc <= 1).all()
    mse = frame[frame.metric == 'mse']['value']
    assert ((mse > 0) & (mse < 0.1)).all()


def test_run_directory_holds_config_status_and_rows(default_run):
    _, run_dir, frame = default_run
    status = json.loads((run_dir / 'status.json').read_text())
    assert status['status'] == 'ok' and status['error'] is None
    assert status['wall_time_s'] > 0
    assert status['device']['platform'] == 'cpu'
    for package in ('jax', 'jaxlib', 'neural-tangents', 'ntkexp'):
        assert status['versions'][package] not in ('', 'not installed')
    assert status['versions']['neural-tangents'] == '0.6.5'
    config = (run_dir / 'config.yaml').read_text()
    assert '\nmodel:\n  _target_: ntkexp.models.fc' in config
    assert 'precision: float64' in config
    table = pd.read_parquet(run_dir / 'rows.parquet')
    assert list(table.columns[:6]) == list(records.BASE_COLUMNS)
    assert len(table) == len(frame) == status['rows']
    row = table[table.metric == 'accuracy'].iloc[0]
    assert row.experiment == 'kernel_regression' and row.model == 'fc'
    assert row.dataset == 'digits' and row.seed == 0
    assert {'width', 'depth', 'diag_reg', 't', 'kernel', 'n_train'} <= set(
        table.columns)
    assert pd.read_csv(run_dir / 'rows.csv').shape == table.shape


def test_diag_reg_sweep_reuses_the_cached_kernel(default_run, caplog):
    cfg, _, _ = default_run
    root = Path(cfg.paths.root)
    cfg2 = _compose([f'paths.root={root}', 'experiment.diag_reg=[1e-4,1e-2,1]',
                     'experiment.t=[null,100]'])
    with caplog.at_level('INFO', logger='ntkexp.kernels'):
        frame = runner.run_job(cfg2, root / 'run2')
    # It says so: every block of both kernels read from the cache, none computed.
    said = [r.getMessage() for r in caplog.records]
    assert any('read from the kernel cache' in m and '(kernel.cache=false recomputes)' in m
               for m in said) and not any('computed in' in m for m in said)
    assert frame[frame.metric == 'kernel_seconds']['value'].iloc[0] < 5
    acc = frame[frame.metric == 'accuracy']
    assert len(acc) == 2 * 3 * 2  # kernels x diag_reg x t
    same = acc[(acc.diag_reg == 1e-4) & (acc.t == float('inf'))]
    first = pd.read_parquet(root / 'run' / 'rows.parquet')
    first = first[first.metric == 'accuracy'].set_index('kernel')['value']
    assert (same.set_index('kernel')['value'] == first).all()


def test_failed_run_keeps_rows_and_records_the_error(tmp_path, monkeypatch):
    cfg = _compose([f'paths.root={tmp_path}', 'dataset.n_train=100',
                    'dataset.n_test=50', 'experiment.diag_reg=[1e-4,0.5]'])
    calls = []
    real = solve.predict_inf

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise solve.KernelSolveError('injected failure')
        return real(*args, **kwargs)

    monkeypatch.setattr(solve, 'predict_inf', flaky)
    with pytest.raises(solve.KernelSolveError):
        runner.run_job(cfg, tmp_path / 'run')
    status = records.read_status(tmp_path / 'run')
    assert status['status'] == 'failed'
    assert 'injected failure' in status['error']
    rows = pd.read_parquet(tmp_path / 'run' / 'rows.parquet')
    # The kernel timing and the first solve's rows survived.
    assert {'kernel_seconds', 'accuracy', 'mse'} <= set(rows.metric)


def test_rows_carry_resolved_values_of_interpolated_options(tmp_path):
    """``'model.width=${model.depth}'`` is 3 in the rows, as in config.yaml,
    not the text of the interpolation."""
    cfg = _compose([f'paths.root={tmp_path}', 'dataset.n_train=32',
                    'dataset.n_test=${dataset.n_train}', 'model.width=${model.depth}'])
    frame = runner.run_job(cfg, tmp_path / 'run')
    assert set(frame['width']) == {cfg.model.depth} == {3}
    assert set(frame['n_test']) == {32}
    assert records.read_status(tmp_path / 'run')['status'] == 'ok'


@pytest.mark.parametrize('overrides, columns', [
    # A flat ResNet reads its vector out directly: no filter size or readout.
    (['model=resnet', 'model.V_std=2.0'],
     dict(layout='flat', V_std=2.0, filter_size=None, readout=None)),
    (['model=resnet', 'model.layout=image'],
     dict(layout='image', filter_size=3, readout='gap')),
    (['model=wrn_nt'], dict(block_style='neural_tangents', k=1)),
    # The class subset, the data seed and the validation split.
    (['experiment=huang2020_depth', 'dataset=digits'],
     {'classes': '[4, 9]', 'dataset.seed': 0, 'n_valid': 0, 'dataset': 'digits'}),
    (['dataset.seed=3', 'dataset.n_valid=10'], {'dataset.seed': 3, 'n_valid': 10}),
    # The synthetic sets' own options.
    (['dataset=gaussian', 'dataset.d=8', 'dataset.target=sin', 'dataset.noise=0.5'],
     dict(d=8, target='sin', noise=0.5)),
])
def test_rows_say_what_the_model_and_data_were(overrides, columns, tmp_path):
    base = runner.base_columns(_compose([f'paths.root={tmp_path}'] + overrides))
    assert {k: base.get(k, 'missing') for k in columns} == columns


def _two_rows(cfg, run_dir, rows):
    rows.add('loss', 1.0, step=0)
    rows.add('loss', 0.5, step=1)


def _two_rows_then_error(cfg, run_dir, rows):
    _two_rows(cfg, run_dir, rows)
    raise ValueError('injected experiment error')


@pytest.mark.parametrize('experiment, raised, error', [
    (_two_rows, OSError, 'writing rows.csv / rows.parquet failed: disk full'),
    (_two_rows_then_error, ValueError,
     'ValueError: injected experiment error; then writing rows.csv'),
])
def test_tables_that_cannot_be_written_leave_a_failed_status_not_running(
        experiment, raised, error, tmp_path, monkeypatch):
    """The status used to stay 'running' (collect: 'killed') when writing
    the tables raised; the experiment's own error stays the one raised."""
    cfg = _compose([f'paths.root={tmp_path}'])
    _run_experiment(monkeypatch, cfg, experiment)

    def disk_full(run_dir):
        raise OSError('disk full')

    monkeypatch.setattr(records, 'write_tables', disk_full)
    with pytest.raises(raised):
        runner.run_job(cfg, tmp_path / 'run')
    status = records.read_status(tmp_path / 'run')
    assert status['status'] == 'failed' and status['rows'] == 2
    assert error in status['error'] and 'rows.jsonl' in status['error']
    assert records.read_rows(tmp_path / 'run')['value'].tolist() == [1.0, 0.5]


def test_tables_store_a_column_of_mixed_types(tmp_path):
    """Parquet cannot store an object column of numbers and text as it is:
    ``write_tables`` stores it as text (as ``collect`` does)."""
    writer = records.RowWriter(tmp_path / records.ROWS_JSONL, {'seed': 0})
    writer.add('loss', 1.0, t=3)
    writer.add('loss', 2.0, t='inf', seed=None)  # a row of every seed
    writer.close()
    records.write_tables(tmp_path)
    stored = pd.read_parquet(tmp_path / records.ROWS_PARQUET)
    assert stored['t'].tolist() == ['3', 'inf']
    # The seed stays an integer beside a row without one (tables print 0, not 0.0).
    assert str(stored['seed'].dtype) == 'Int64' and stored['seed'].tolist() == [0, pd.NA]
    assert pd.read_csv(tmp_path / records.ROWS_CSV)['value'].tolist() == [1.0, 2.0]


def _run_experiment(monkeypatch, cfg, experiment):
    """Makes ``cfg.experiment.run`` name ``experiment`` in ``runner.run_job``."""
    real = runner.get_method
    monkeypatch.setattr(runner, 'get_method', lambda path: (
        experiment if path == cfg.experiment.run else real(path)))


def _rows_then_sigterm(cfg, run_dir, rows):
    """An experiment that writes two rows, then is killed (``kill <pid>``)."""
    rows.add('loss', 1.0, step=0)
    rows.add('loss', 0.5, step=1)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the handler raises during the sleep
    rows.add('loss', 0.25, step=2)


def test_sigterm_fails_the_run_and_keeps_its_rows(tmp_path, monkeypatch):
    """SIGTERM (``kill``, a time limit) used to end the process at once:
    status.json said "running" forever and no tables were written. Now the
    run records the signal, keeps its rows and leaves SIGTERM as it was."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip('signal handlers are set in the main thread only')
    cfg = _compose([f'paths.root={tmp_path}'])
    _run_experiment(monkeypatch, cfg, _rows_then_sigterm)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a shell
    try:
        start = time.time()
        with pytest.raises(interrupts.Terminated) as stopped:
            runner.run_job(cfg, tmp_path / 'run')
        assert time.time() - start < 20  # not after the 30 s sleep
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.signum == signal.SIGTERM
    assert interrupts.exit_code(stopped.value) == 143
    status = records.read_status(tmp_path / 'run')
    assert status['status'] == 'failed' and status['rows'] == 2
    assert status['error'].startswith('Terminated: got SIGTERM (signal 15)')
    rows = pd.read_parquet(tmp_path / 'run' / 'rows.parquet')
    assert rows['value'].tolist() == [1.0, 0.5]


def test_sigterm_handler_of_a_scheduler_is_left_alone(tmp_path, monkeypatch):
    """In a SLURM job submitit handles SIGTERM itself (a checkpoint and a
    requeue); the run must not replace that handler."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip('signal handlers are set in the main thread only')
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        cfg = _compose([f'paths.root={tmp_path}'])
        _run_experiment(monkeypatch, cfg, _rows_then_sigterm)
        monkeypatch.setattr(time, 'sleep', lambda seconds: None)
        runner.run_job(cfg, tmp_path / 'run')
        assert seen == [signal.SIGTERM]
        assert records.read_status(tmp_path / 'run')['status'] == 'ok'
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_cli_killed_run_is_one_line_and_exit_143(tmp_path, slow_experiment):
    """``kill`` on ``ntkexp run``: one line naming the signal and the run
    directory, no traceback, the shell's exit status 143, the record failed."""
    env = dict(os.environ, NTKEXP_HOME=str(tmp_path), JAX_PLATFORMS='cpu',
               **slow_experiment.env)
    process = subprocess.Popen(
        NTKEXP + ['run', slow_experiment.override], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    slow_experiment.signal_after_first_row(process, tmp_path / 'runs')
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert 'Traceback' not in stderr
    assert 'ntkexp: stopped: Terminated: got SIGTERM' in stderr
    status = json.loads(next((tmp_path / 'runs').rglob('status.json')).read_text())
    assert status['status'] == 'failed' and status['rows'] == 1


XLA_OUT_OF_MEMORY = ('RESOURCE_EXHAUSTED: Out of memory while trying to allocate '
                     '53687091200 bytes.\nBufferAssignment OOM Debugging.\n'
                     'BufferAssignment stats: ...')


def test_out_of_memory_is_advice_in_the_status(tmp_path, monkeypatch):
    """A device out of memory (XLA's RESOURCE_EXHAUSTED) is recorded as one
    line naming this run's settings that lower its memory; the traceback keeps
    XLA's whole report. Other errors keep their own text."""
    def experiment(cfg, run_dir, rows):
        rows.add('loss', 1.0, step=0)
        raise jax.errors.JaxRuntimeError(XLA_OUT_OF_MEMORY)

    cfg = _compose([f'paths.root={tmp_path}', 'kernel.memory_gb=40'])
    _run_experiment(monkeypatch, cfg, experiment)
    with pytest.raises(jax.errors.JaxRuntimeError):
        runner.run_job(cfg, tmp_path / 'run')
    status = records.read_status(tmp_path / 'run')
    assert status['status'] == 'failed' and status['rows'] == 1
    assert status['error'].startswith(
        'out of device memory (RESOURCE_EXHAUSTED: Out of memory while trying '
        'to allocate 53687091200 bytes.). Lower kernel.memory_gb (now 40) for '
        'infinite-width kernel blocks or dataset.n_train (now 1000).')
    assert 'BufferAssignment stats' in status['traceback']
    # The experiment's own settings are named where it has them.
    alignment = _compose(['experiment=alignment'])
    advice = runner.out_of_memory_advice(
        jax.errors.JaxRuntimeError(XLA_OUT_OF_MEMORY), alignment)
    assert ('kernel.memory_gb (now 4.0) for infinite-width and empirical NTK '
            'blocks, experiment.batch_size (now None) for training mini-batches '
            'or dataset.n_train (now 64)') in advice
    fixed = _compose(['experiment=alignment', 'experiment.ntk_block_size=512'])
    advice = runner.out_of_memory_advice(
        jax.errors.JaxRuntimeError(XLA_OUT_OF_MEMORY), fixed)
    assert ('kernel.memory_gb (now 4.0) for infinite-width kernel blocks, '
            'experiment.ntk_block_size (now 512) for empirical NTK blocks, '
            'experiment.batch_size (now None)') in advice
    assert runner.out_of_memory_advice(RuntimeError('other'), alignment) is None


def test_cli_out_of_memory_is_one_line(tmp_path, experiment_module):
    module_env, override = experiment_module(
        'oom_experiment',
        'import jax\n'
        'def run(cfg, run_dir, rows):\n'
        f'    raise jax.errors.JaxRuntimeError({XLA_OUT_OF_MEMORY!r})\n')
    env = dict(os.environ, NTKEXP_HOME=str(tmp_path), JAX_PLATFORMS='cpu',
               **module_env)
    result = subprocess.run(NTKEXP + ['run', override], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith('ntkexp: error: out of device memory (RESOURCE_EXHAUSTED')
    assert 'kernel.memory_gb (now 4.0)' in lines[-2]
    assert lines[-1].startswith('(status and rows so far: ')


def test_cli_budget_below_one_entry_is_one_line(tmp_path):
    """kernel.memory_gb too small for even one kernel entry: the engine's
    MemoryError, in readable units, as one line (it was a traceback)."""
    result = _ntkexp(['run', 'kernel.memory_gb=1e-6'], tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    line = result.stderr.strip().splitlines()[-2]
    assert line.startswith('ntkexp: error: one kernel entry needs ')
    assert 'KiB, more than kernel.memory_gb=1e-06 (1.05 KiB)' in line
    assert line.endswith('raise kernel.memory_gb')


def test_cli_default_run_prints_table(tmp_path):
    result = _ntkexp(['run'], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'accuracy' in result.stdout and 'nngp' in result.stdout
    assert 'run directory:' in result.stdout
    status_files = list((tmp_path / 'runs').rglob('status.json'))
    assert len(status_files) == 1
    assert json.loads(status_files[0].read_text())['status'] == 'ok'
    # The same config again is skipped, not recomputed.
    again = _ntkexp(['run'], tmp_path)
    assert again.returncode == 0 and 'skipped' in again.stdout
    assert len(list((tmp_path / 'runs').rglob('status.json'))) == 1


def test_a_preset_composing_the_same_config_runs_under_its_own_name(tmp_path):
    """model=cnn_gap composes what model=cnn does: it used to be skipped as
    done, leaving no cnn_gap rows; each preset's run is then skipped."""
    tiny = ['dataset.n_train=8', 'dataset.n_test=8', 'model.depth=1',
            'kernel.progress=false']
    for model, skipped in (('cnn', False), ('cnn_gap', False), ('cnn_gap', True),
                           ('cnn', True)):
        result = _ntkexp(['run', f'model={model}', *tiny], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert ('skipped' in result.stdout) == skipped, (model, result.stdout[-500:])
    runs = [records.read_rows(p.parent) for p in (tmp_path / 'runs').rglob('status.json')]
    assert sorted(rows['model'].iloc[0] for rows in runs) == ['cnn', 'cnn_gap']


@pytest.mark.parametrize('args, message', [
    (['model=nope'], "unknown model 'nope'; choose one of: cnn, cnn_gap, "
                     'cnn_vec, fc, lcn, myrtle, resnet, wrn, wrn_nt'),
    (['dataset=imagenet'], "unknown dataset 'imagenet'; choose one of:"),
    (['model.width=0'], 'width'),
    (['experiment.diag_reg=-1'], 'diag_reg=-1'),
    (['experiment.kernels=[nngp,foo]'], "experiment.kernels=['nngp', 'foo'] is "
                                        'invalid; give nngp and/or ntk'),
    (['experiment.kernels=[]'], 'experiment.kernels=[] is invalid'),
    (['precision=float16'], 'precision'),
    (['matmul_precision=tf32'], "matmul_precision='tf32' is invalid; use "
                                'matmul_precision=highest or'),
    (['experiment.t=[10,-1]'], 'experiment.t=-1 is invalid; a training time '
                               'is a number >= 0, inf or null'),
    (['experiment.t=soon'], 'experiment.t=soon is invalid'),
    (['dataset.n_train=0'], 'dataset.n_train must be >= 1 (or null for all), '
                            'got 0.'),
    (['kernel.memory_gb=abc'], "kernel.memory_gb='abc' must be a number > 0"),
    (['experiment.run=nosuch.module.run'],
     "experiment.run='nosuch.module.run' cannot be imported"),
    # An interpolation with no value for this choice (huang2020_depth's
    # classes per dataset): the key, omegaconf's reason and the fix.
    (['experiment=huang2020_depth', 'dataset=sphere'],
     "dataset.classes does not resolve: Interpolation key "
     "'experiment.classes.sphere' not found. To fix: set dataset.classes=VALUE"),
    (['dataset.n_train=${nowhere}'], 'dataset.n_train does not resolve'),
    # Options that a run would silently ignore.
    (['experiment=nth', 'model=cnn_vec', 'experiment.widths=[8]'],
     'experiment.widths=[8] would be ignored: experiment=nth trains '
     'experiment.model_widths.cnn=[8, 16, 32, 64] for this model; add '
     'experiment.model_widths=null'),
    (['experiment=nads', 'dataset=mnist'],
     'dataset=mnist would be ignored: experiment=nads generates its own'),
    (['experiment=finite_width', 'experiment.widths=null', 'model.width=-5'],
     'model.width is -5; widths must be integers >= 1 (e.g. model.width=64)'),
    (['dataset.n_valid=-1'], 'dataset.n_valid=-1 must be an integer >= 0'),
    # An experiment file's dataset option the dataset has not (it was a
    # five-line Hydra error from inside the run).
    (['experiment=kernel_precision', 'dataset=sphere'],
     'dataset=sphere has no option targets (set by experiment=kernel_precision: '
     'dataset.targets=onehot_centered); use a dataset that has it (dataset=cifar10, '
     'dataset=cifar100, dataset=digits, dataset=fashion_mnist, dataset=mnist) or '
     "drop it with '~dataset.targets'"),
    # A convolutional model on vectors (it failed at the first kernel block).
    (['model=lcn', 'dataset=circle'],
     'model=lcn needs image inputs (N, H, W, C), and dataset=circle gives vectors; '
     'use an image dataset'),
    (['model=cnn', 'dataset.flatten=true'],
     'dataset=digits gives flattened images (dataset.flatten=true); add '
     'dataset.flatten=false'),
    (['experiment=finite_width', 'dataset.n_valid=100'],
     'dataset.n_valid=100: only experiment=kernel_regression (and the paper configs '
     'that run it) scores a validation split; experiment.run='
     'ntkexp.experiments.finite_width.run would ignore it: drop dataset.n_valid'),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, args,
                                                        message):
    result = _ntkexp(['run'] + args, tmp_path, timeout=120)
    assert result.returncode == 2
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('ntkexp: error:') and message in lines[0]
    assert not list(tmp_path.rglob('status.json'))
    assert not list(tmp_path.rglob('rows.jsonl'))


@pytest.mark.parametrize('overrides, message', [
    (['model.widht=3'], "unknown key 'model.widht': did you mean model.width? "
                        '(`ntkexp run --cfg job` prints the config)'),
    (['experiment=alignment', 'experiment.step=3'],
     "unknown key 'experiment.step' with experiment=alignment: did you mean "
     'experiment.steps'),
    # In a sweep every choice is checked: WRNs have k, Myrtles do not.
    (['-m', 'model=wrn,myrtle', 'model.k=2'],
     "unknown key 'model.k' with model=myrtle: 'model' has: _target_, depth, "
     'width,'),
    # A node the experiment has not (nads makes its own data): the leaf elsewhere.
    (['experiment=nads', 'dataset.n_train=32'],
     "unknown key 'dataset.n_train' with experiment=nads: did you mean "
     'experiment.n_train?'),
])
def test_unknown_key_is_one_line_with_the_closest_keys(overrides, message,
                                                       capsys):
    assert message in one_line_error(overrides, capsys)


def one_line_error(overrides: list[str], capsys) -> str:
    """``ntkexp run OVERRIDES``'s error: exit status 2, one ``ntkexp: error:``
    line (returned), before anything runs."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(['run'] + overrides)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('ntkexp: error: ')
    return err


@pytest.mark.parametrize('overrides, message', [
    # OmegaConf reads `no` as the string 'no', which bool() takes as true.
    (['experiment.variance=no'],
     "experiment.variance='no' is not true or false: experiment.variance is a "
     'switch (default false); use experiment.variance=true or '
     'experiment.variance=false'),
    (['experiment=alignment', 'experiment.infinite=maybe'],
     "experiment.infinite='maybe' is not true or false"),
    (['-m', 'kernel.cache=true,off'], "kernel.cache='off' is not true or false"),
    (['skip_done=0'], 'skip_done=0 is not true or false'),
    (['experiment=finite_width', 'experiment.centered=null'],
     'experiment.centered=null is not true or false'),
])
def test_a_switch_takes_only_true_or_false(overrides, message, capsys):
    assert message in one_line_error(overrides, capsys)


@pytest.mark.parametrize('overrides, message', [
    (['dataset.classes=[4,9'], "cannot read the override 'dataset.classes=[4,9' "
                               "(no viable alternative at input '[4,9'). To fix: close"),
    (['model.width=64,128'], "'model.width=64,128' gives several values, a sweep: add -m "
                             '(ntkexp run -m model.width=64,128 ...), or write one list '
                             'value as model.width=[...]'),
    (['model=fc,cnn'], "'model=fc,cnn' gives several values, a sweep: add -m "
                       '(ntkexp run -m model=fc,cnn ...)'),
    (['-m', 'model.width=64,128', '--cfg', 'hydra', '-p', 'hydra.launcher'],
     '--cfg prints the config of one run, not of a sweep: drop -m'),
])
def test_unreadable_override_or_sweep_without_m_is_one_line(overrides, message, capsys):
    """Hydra's own messages for these span several lines and end with the
    HYDRA_FULL_ERROR hint (for --cfg in a sweep, a traceback)."""
    assert message in one_line_error(overrides, capsys)


def test_override_syntax_check_leaves_valid_overrides_alone():
    cli.check_override_syntax(['-m', 'model=fc,cnn', 'seed=range(3)',
                               'experiment.diag_reg=[1e-3,1e-2]', "+experiment.x='a, b'",
                               '--cfg', 'job', 'hydra.job.chdir=false'])
    cli.check_override_syntax(['experiment.t=[1,null]', 'model.width=64'])


def test_switch_check_leaves_true_false_interpolations_and_names_alone():
    cli.check_key_overrides(['-m', 'experiment.variance=true,false',
                             'kernel.cache=False', 'skip_done=${kernel.cache}',
                             'model=cnn_vec', 'model.fast_kernel=auto'])


def test_unknown_key_hints():
    from omegaconf import OmegaConf
    cfg = OmegaConf.create({'model': {'width': 8, 'depth': 2},
                            'experiment': {'slice': None, 'widths': [1, 2],
                                           'need': '???'}})
    assert cli.unknown_key(cfg, 'model.width') is None
    assert cli.unknown_key(cfg, 'model.widht') == 'did you mean model.width?'
    assert cli.unknown_key(cfg, 'model.zzz') == "'model' has: width, depth"
    assert cli.unknown_key(cfg, 'modle') == 'did you mean model?'
    # The right key under another node (a group prefix left out or wrong).
    assert cli.unknown_key(cfg, 'depth') == 'did you mean model.depth?'
    assert cli.unknown_key(cfg, 'experiment.width') == 'did you mean model.width?'
    # Below a null, a list or a missing value: left to Hydra.
    for key in ('experiment.slice.x0', 'experiment.widths.0', 'experiment.need.a'):
        assert cli.unknown_key(cfg, key) is None


def test_key_check_leaves_valid_and_hydra_overrides_alone():
    cli.check_key_overrides(['-m', 'model=fc,cnn', 'model.width=8',
                             'dataset.n_train=10', '+experiment.extra=1',
                             '++model.fast_kernel=false', 'hydra.job.chdir=false',
                             'experiment.diag_reg=[1e-3,1e-2]',
                             'model@extra=fc'])
    cli.check_key_overrides(['model=choice(fc,cnn)', 'model.nope=1'])  # Hydra's


def test_missing_dataset_is_its_own_error_with_a_status_record(tmp_path, monkeypatch):
    """A dataset that cannot be found fails the run with the builder's own
    message (what was tried, how to fix it), not Hydra's wrapper around it,
    and the run directory records it."""
    for fallback in ('NTKEXP_DATA', 'TFDS_DATA_DIR'):  # where a user's copy would be found
        monkeypatch.delenv(fallback, raising=False)
    empty = tmp_path / 'no_data'
    empty.mkdir()
    result = _ntkexp(['run', 'dataset=cifar10', f'dataset.data_dir={empty}',
                      'dataset.download=false'], tmp_path, timeout=120)
    assert result.returncode == 1
    assert "ntkexp: error: Dataset 'cifar10' not found" in result.stderr, \
        result.stderr
    assert 'To fix: pass dataset.data_dir=DIR' in result.stderr
    assert 'InstantiationException' not in result.stderr
    assert 'Error executing job' not in result.stderr
    assert 'Traceback' not in result.stderr
    (status,) = [json.loads(p.read_text()) for p in tmp_path.rglob('status.json')]
    assert status['status'] == 'failed'
    assert status['error'].startswith("FileNotFoundError: Dataset 'cifar10' not found")


def test_import_leaves_tensorflow_out():
    code = 'import sys, ntkexp, neural_tangents; print("tensorflow" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == 'False'
    assert ntkexp.__version__


def test_run_sets_and_restores_precision_even_when_it_fails(tmp_path,
                                                            monkeypatch):
    """A run's ``precision`` / ``matmul_precision`` hold during it only."""
    seen = {}

    def experiment(cfg, run_dir, rows):
        seen['x64'] = bool(jax.config.jax_enable_x64)
        seen['matmul'] = jax.config.jax_default_matmul_precision
        raise RuntimeError('experiment failed')

    cfg = _compose([f'paths.root={tmp_path}', 'precision=float64',
                    'matmul_precision=highest'])
    _run_experiment(monkeypatch, cfg, experiment)
    jax.config.update('jax_enable_x64', False)
    jax.config.update('jax_default_matmul_precision', 'default')
    with pytest.raises(RuntimeError, match='experiment failed'):
        runner.run_job(cfg, tmp_path / 'run')
    assert seen == {'x64': True, 'matmul': 'highest'}
    assert not jax.config.jax_enable_x64
    assert jax.config.jax_default_matmul_precision == 'default'
    status = json.loads((tmp_path / 'run' / 'status.json').read_text())
    assert status['status'] == 'failed'


def test_experiment_option_as_list():
    from omegaconf import OmegaConf
    from ntkexp.experiments.options import as_list
    cfg = OmegaConf.create({'a': [1, 2], 'b': 3, 'c': None})
    assert as_list(cfg.a) == [1, 2] and isinstance(as_list(cfg.a), list)
    assert as_list((1, 2)) == [1, 2] and as_list(cfg.b) == [3]
    assert as_list(cfg.c) == [] and as_list(None, [None]) == [None]
    assert as_list(None, None) is None
    default = [5]
    got = as_list(None, default)
    got.append(6)
    assert default == [5]  # a copy


def test_run_help_lists_the_groups_for_users(capsys):
    cli.main(['run', '--help'])
    out = capsys.readouterr().out
    assert 'ntkexp run experiment=alignment model=wrn' in out
    assert f"  model: {', '.join(cli.available('model'))}" in out
    assert 'experiment: ' in out and 'kernel_regression' in out
    assert '--cfg job' in out
    assert ':mod:' not in out  # the module's notes for developers stay out


def test_rows_come_back_bit_for_bit(tmp_path):
    """rows.jsonl -> rows.parquet / rows.csv keeps every digit (pandas.read_json
    rounded the last one) and leaves date-like column names alone."""
    values = np.random.RandomState(0).randn(50) * 10.0 ** np.arange(-25, 25)
    with records.RowWriter(tmp_path / records.ROWS_JSONL, {'experiment': 'e'}) as rows:
        for i, value in enumerate(values):
            rows.add('x', value, step=i, train_time=1.5 * i, t=math.inf)
    frame = records.write_tables(tmp_path)
    stored = pd.read_parquet(tmp_path / records.ROWS_PARQUET)
    assert stored['value'].tolist() == values.tolist() == frame['value'].tolist()
    assert stored['train_time'].dtype.kind == 'f' and stored['t'].iloc[0] == math.inf
    # A crash while the last row was written: that line is left out.
    with open(tmp_path / records.ROWS_JSONL, 'a') as f:
        f.write('{"experiment": "e", "metric": "x", "val')
    assert len(records.read_rows(tmp_path)) == 50


@pytest.fixture
def as_hydra_job():
    """Composes a config as `ntkexp run` would see it inside its Hydra job
    (HydraConfig set, so ``runner.command_line_keys`` sees the overrides),
    without running Hydra's main in this process (it would point logging at
    pytest's capture streams)."""
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top

    def make(overrides):
        with initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                   version_base='1.3'):
            cfg = compose('config', overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg['hydra']
        return cfg
    yield make
    HydraConfig.instance().cfg = None


@pytest.mark.parametrize('overrides, message', [
    (['experiment=jacot2018_fig1', 'seed=3'],
     'seed=3 would be ignored: experiment=jacot2018_fig1 trains '
     'experiment.seeds=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; give '
     'experiment.seeds=[3] instead'),
    (['experiment=finite_width', 'model.width=8'],
     'model.width=8 would be ignored: experiment=finite_width trains the '
     'widths [64, 256]'),
    # Training options that another option sets aside.
    (['experiment=finite_width', 'experiment.lr=0.1'],
     'experiment.lr=0.1 would be ignored: experiment.lr_fraction=0.5 sets the '
     'learning rate to that fraction of the largest stable one '
     '(nt.predict.max_learning_rate of the NTK); add experiment.lr_fraction=null'),
    (['experiment=kopitkov2019', 'experiment.lr=2.0'],
     'experiment.lr=2.0 would be ignored: experiment.lr_fraction=0.5'),
    (['experiment=finite_width', 'experiment.momentum=0.5'],
     'experiment.momentum=0.5 would be ignored: experiment.optimizer=gd has no '
     'momentum; add experiment.optimizer=momentum'),
    (['experiment=alignment', 'experiment.decay_factor=0.5'],
     'experiment.decay_factor=0.5 would be ignored: experiment.schedule=constant '
     'does not decay in steps; add experiment.schedule=step'),
    (['experiment=kopitkov2019', 'experiment.final_lr_fraction=0.1'],
     'experiment.final_lr_fraction=0.1 would be ignored: experiment.schedule='
     'constant is not cosine'),
    (['experiment=jacot2018_fig1', 'experiment.lr_kernel=empirical'],
     'experiment.lr_kernel=empirical would be ignored: experiment.lr_fraction=null '
     'uses experiment.lr=1.0'),
    (['experiment=huang2020_depth_resnet', 'model.alpha=0.3'],
     'model.alpha=0.3 would be ignored: model.alpha_gamma=0.5 sets alpha = '
     'depth^-0.5 at every depth; add model.alpha_gamma=null to use model.alpha'),
    (['model.width=64'],
     'model.width=64 would be ignored: experiment=kernel_regression computes '
     'infinite-width kernels, which in the NTK parameterisation do not depend on '
     'the width; drop it'),
    (['experiment=resntk_spectrum', 'dataset.n_train=32'],
     'dataset.n_train=32 would be ignored: experiment=resntk_spectrum reads no '
     'dataset: it integrates the kernel over the sphere'),
    (['experiment=resntk_spectrum', 'dataset=digits'],
     'dataset=digits would be ignored: experiment=resntk_spectrum reads no dataset'),
    (['experiment=finite_width', 'experiment.l2_center=init'],
     'experiment.l2_center=init would be ignored: experiment.l2=0.0 adds no L2 term '
     'to centre; add experiment.l2=1e-3'),
    (['experiment=finite_width', 'experiment.percentiles=[5,95]'],
     'experiment.percentiles=[5, 95] would be ignored: experiment.functions=false'),
    (['experiment=finite_width', 'experiment.kernel_diag_reg=0.1'],
     'experiment.kernel_diag_reg=0.1 would be ignored: experiment.kernel_inf=false'),
    (['experiment=finite_width', 'experiment.slice_steps=[0,10]'],
     'experiment.slice_steps=[0, 10] would be ignored: experiment.slice=null'),
    (['experiment.augment.crop=2'],
     'experiment.augment.crop=2 would be ignored: experiment.augment.members=0 '
     'trains no augmented predictor'),
    (['experiment=alignment', 'kernel.jobs=2'],
     'kernel.jobs=2 would be ignored: experiment=alignment computes its kernels in '
     'this process'),
    (['seed=1'],
     "seed=1 would be ignored: experiment=kernel_regression has no random "
     'initialisation (its kernel predictors are deterministic given the data), and '
     'dataset.seed=0 draws the training subset; type dataset.seed=1 instead'),
    (['experiment=lee2020_digits', 'seed=2', 'dataset.seed=1'],
     'seed=2 would be ignored: experiment=kernel_regression has no random '
     "initialisation (its kernel predictors are deterministic given the data), and "
     "dataset.seed=1 draws the training subset; drop seed=2, or add "
     "'dataset.seed=${seed}' to draw it by seed"),
    (['experiment=resntk_spectrum', 'model.depth=3'],
     'model.depth=3 would be ignored: experiment=resntk_spectrum computes '
     'experiment.depths=[1, 2, 4, 8, 16]; give experiment.depths=[3] instead, or '
     'add experiment.depths=null to use model.depth'),
    (['experiment=resntk_spectrum', 'model=resnet', 'model.alpha=0.3'],
     'model.alpha=0.3 would be ignored: experiment=resntk_spectrum computes '
     'experiment.alphas=[0.1, 0.5, 1.0]'),
    (['model=resnet', 'model.readout=flatten'],
     'model.readout=flatten would be ignored: model.layout=flat has no '
     'convolutions'),
    (['kernel.executor=slurm'],
     'kernel.executor=slurm would be ignored: kernel.jobs=1 computes the kernel in '
     'this job; add kernel.jobs=N'),
    (['kernel.slurm.partition=gpu'],
     "kernel.slurm.partition=gpu would be ignored: kernel.slurm sets the SLURM jobs "
     "of one kernel's blocks, which run with kernel.jobs=N kernel.executor=slurm"),
    (['dataset=digits', 'dataset.stats_from=train_split'],
     'dataset.stats_from=train_split would be ignored: it says where '
     'dataset.standardize / dataset.zca take their statistics from, and neither '
     'is set'),
])
def test_scalar_beside_the_list_it_would_not_change_is_an_error(
        overrides, message, tmp_path, as_hydra_job):
    cfg = as_hydra_job([f'paths.root={tmp_path}'] + overrides)
    assert {o.split('=')[0] for o in overrides} <= runner.command_line_keys()
    with pytest.raises(runner.ConfigError) as error:
        runner.validate(cfg)
    assert message in str(error.value)
    # Outside a Hydra job (compose API, tests) nothing is "on the command line".
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
    HydraConfig.instance().cfg = None
    assert runner.command_line_keys() == set()
    runner.validate(_compose([f'paths.root={tmp_path}'] + overrides))


def test_the_command_lines_lr_and_momentum_train_once_nothing_sets_them_aside(
        tmp_path, as_hydra_job):
    cfg = as_hydra_job([
        f'paths.root={tmp_path}', 'experiment=finite_width',
        'experiment.widths=[8]', 'experiment.seeds=[0]',
        'experiment.lr_fraction=null', 'experiment.lr=0.3',
        'experiment.optimizer=momentum', 'experiment.momentum=0.5',
        'dataset.n_train=8', 'dataset.n_test=8', 'experiment.steps=1',
        'kernel.progress=false'])
    rows = runner.run_job(cfg, tmp_path / 'run')
    assert rows[rows.metric == 'lr'].value.tolist() == [0.3]


@pytest.mark.parametrize('overrides', [
    # Both options typed: a grid the user asked for (the gd jobs of
    # -m experiment.optimizer=gd,momentum experiment.momentum=0.5).
    ['experiment=finite_width', 'experiment.optimizer=gd', 'experiment.momentum=0.5'],
    ['experiment=finite_width', 'experiment.lr_fraction=0.5', 'experiment.lr=0.1'],
    ['experiment=alignment', 'experiment.schedule=cosine', 'experiment.decay_at=[0.5]'],
    ['dataset=digits', 'dataset.zca=null', 'dataset.stats_from=train_split'],
    ['kernel.jobs=1', 'kernel.executor=slurm', 'kernel.slurm.partition=gpu'],
    ['model=resnet', 'model.layout=image', 'model.filter_size=5', 'dataset=digits'],
    ['experiment=huang2020_depth_resnet', 'model.alpha_gamma=null', 'model.alpha=0.3'],
    ['experiment=resntk_spectrum', 'experiment.depths=null', 'model.depth=3'],
    ['experiment=finite_width', 'experiment.l2=1e-3', 'experiment.l2_center=init'],
    ['experiment=jacot2018_fig2', 'experiment.percentiles=[5,95]'],
    ['experiment.augment.members=2', 'experiment.augment.crop=2'],
    ['experiment=ntk_drift', 'kernel.jobs=2'],
    # The standard parameterisation's kernels depend on the width.
    ['model.parameterization=standard', 'model.width=64'],
    # A seed that reaches the data subset (typed, or arora2020's config).
    ['seed=1', 'dataset.seed=${seed}'],
    ['experiment=arora2020_small_data', 'seed=1'],
    # Options the config files already use.
    ['experiment=alignment', 'experiment.schedule=step', 'experiment.decay_at=[0.5]'],
    ['dataset=digits', 'dataset.zca=0.1', 'dataset.stats_from=train_split'],
])
def test_an_option_set_aside_by_another_typed_option_is_the_users_grid(
        overrides, tmp_path, as_hydra_job):
    runner.validate(as_hydra_job([f'paths.root={tmp_path}'] + overrides))


def test_finite_width_trains_the_command_lines_seed_and_width(tmp_path,
                                                              as_hydra_job):
    cfg = as_hydra_job([
        f'paths.root={tmp_path}', 'experiment=finite_width',
        'experiment.widths=null', 'model.width=8', 'seed=3',
        'dataset.n_train=8', 'dataset.n_test=8', 'experiment.steps=1',
        'kernel.progress=false'])
    rows = runner.run_job(cfg, tmp_path / 'run')
    trained = rows[rows.predictor == 'net']
    assert len(trained) and set(trained.seed) == {3} and set(trained.width) == {8}


@pytest.mark.parametrize('override, message', [
    ('kernel.memory_gb=abc', "kernel.memory_gb='abc' must be a number > 0"),
    ('kernel.block_size=abc', "kernel.block_size='abc' must be a positive integer"),
    ('kernel.block_size=1.5', 'kernel.block_size=1.5 must be a positive integer'),
    ('kernel.jobs=abc', "kernel.jobs='abc' must be an integer >= 1"),
    ('seed=abc', "seed='abc' must be an integer (e.g. seed=0; a sweep: seed=0,1,2)"),
    ('dataset.seed=1.5', 'dataset.seed=1.5 must be an integer'),
    ('experiment.diag_reg=abc', "experiment.diag_reg='abc' is invalid"),
    ('experiment.run=nosuch.module.run',
     "experiment.run='nosuch.module.run' cannot be imported (ModuleNotFoundError: "
     "No module named 'nosuch'); check the name, and put the folder holding "
     "'nosuch' on PYTHONPATH"),
    ('experiment.run=ntkexp.experiments.kernel_regression.nope',
     "module 'ntkexp.experiments.kernel_regression' has no attribute 'nope'"),
    ('experiment.run=nodots', "experiment.run='nodots' must name a function as "
                              'module.function'),
])
def test_bad_values_name_their_key(override, message, tmp_path):
    # (On the command line each is one line and exit 2: the ConfigError path
    # of test_bad_input_is_one_clear_line_and_writes_nothing.)
    with pytest.raises(runner.ConfigError) as error:
        runner.validate(_compose([f'paths.root={tmp_path}', override]))
    assert message in str(error.value)


def test_unusable_run_folder_is_one_line(tmp_path, capsys):
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(SystemExit) as exit_:
        cli.main(['run', f'paths.root={tmp_path}',
                  f'paths.runs={tmp_path}/a_file/runs'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f'ntkexp: error: paths.runs={tmp_path}/a_file/runs '
                          'cannot be used: Not a directory')


def test_flags_go_before_the_overrides_wherever_they_were_typed():
    # Hydra's parser rejects `a=1 -m b=2,3`; the user typed it all the same.
    assert cli._add_overrides(['a=1', '-m', 'b=2,3'], ['x=1']) == [  # pylint: disable=protected-access
        '-m', 'x=1', 'a=1', 'b=2,3']
    assert cli._add_overrides(['a=1', '--cfg', 'job', '-p', 'a', 'b=2'], []) == [  # pylint: disable=protected-access
        '--cfg', 'job', '-p', 'a', 'a=1', 'b=2']
