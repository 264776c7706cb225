"""`ntkexp collect` and `ntkexp plot` on run directories written here.

The run directories follow the records layout (status.json, rows.jsonl,
config.yaml, Hydra's .hydra/overrides.yaml) with known values, so the table,
the summary over seeds and the figures can be checked exactly. No JAX.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ntkexp import cli
from ntkexp import collect
from ntkexp import plot
from ntkexp import records
from ntkexp.plots import figures as plot_figures


def fake_accuracy(kernel: str, diag_reg: float, n_train: int, seed: int) -> float:
    """A made-up but deterministic accuracy for the synthetic runs."""
    return (0.5 + 0.1 * math.log10(n_train) - 0.02 * abs(math.log10(diag_reg) + 3)
            + (0.01 if kernel == 'nngp' else 0.0) + 0.001 * seed)


def write_run(root: Path, name: str, *, status: str = 'ok', seed: int = 0,
              n_train: int = 100, experiment: str = 'kernel_regression',
              run: str = 'ntkexp.experiments.kernel_regression.run',
              rows: bool = True, overrides=(), finished='2024-01-01T00:00:00',
              config_hash: str | None = None, data_seed: int | None = None) -> Path:
    """One run directory with rows for 2 kernels x 3 diag_reg (t = inf)."""
    run_dir = root / name
    (run_dir / '.hydra').mkdir(parents=True)
    cfg = {'experiment': {'name': experiment, 'run': run},
           'model': {'name': 'fc', 'width': 512, 'depth': 2},
           'dataset': {'name': 'digits', 'n_train': n_train, 'n_test': 50},
           'seed': seed, 'precision': 'float64'}
    if data_seed is not None:
        cfg['dataset']['seed'] = data_seed
    (run_dir / records.CONFIG_YAML).write_text(yaml.safe_dump(cfg))
    (run_dir / '.hydra' / 'overrides.yaml').write_text(yaml.safe_dump(
        [f'seed={seed}', f'dataset.n_train={n_train}', *overrides]))
    base = {'experiment': experiment, 'model': 'fc', 'dataset': 'digits',
            'seed': seed, 'width': 512, 'depth': 2, 'n_train': n_train,
            'n_test': 50, 'precision': 'float64'}
    count = 0
    if rows:
        with records.RowWriter(run_dir / records.ROWS_JSONL, base) as writer:
            writer.add('kernel_seconds', 1.5, n_train=n_train, n_test=50)
            for kernel in ('nngp', 'ntk'):
                for diag_reg in (1e-4, 1e-3, 1e-2):
                    params = dict(kernel=kernel, diag_reg=diag_reg, t=math.inf)
                    acc = fake_accuracy(kernel, diag_reg, n_train, seed)
                    writer.add('accuracy', acc, **params)
                    writer.add('mse', 1.0 - acc, **params)
            count = writer.count
    records.write_json_atomic(run_dir / records.STATUS_JSON, {
        'status': status, 'error': None if status == 'ok' else 'ValueError: boom',
        'wall_time_s': 2.5, 'finished': finished, 'rows': count,
        'config_hash': config_hash or f'hash-{name}'})
    return run_dir


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / 'runs'
    for seed in range(3):
        for n_train in (20, 100):
            write_run(root / 'sweep', f'{seed}_{n_train}', seed=seed,
                      n_train=n_train, overrides=['experiment.kernels=[nngp,ntk]'])
    write_run(root / 'sweep', 'failed_early', status='failed', seed=7, rows=False)
    return root


def test_collect_table_has_every_run_row_and_run_columns(runs):
    frame = collect.collect([runs])
    assert frame['run_dir'].nunique() == 7
    for column in ('run_dir', 'status', 'wall_time_s', 'metric', 'value', 'seed',
                   'diag_reg', 'kernel', 'n_train', 'experiment_run', 'error'):
        assert column in frame.columns, column
    # 6 ok runs x (1 + 2 kernels x 3 regs x 2 metrics) rows + 1 row for the failed run.
    assert len(frame) == 6 * 13 + 1
    failed = frame[frame['status'] == 'failed']
    assert len(failed) == 1 and failed['metric'].isna().all()
    assert failed['seed'].iloc[0] == 7 and failed['error'].iloc[0] == 'ValueError: boom'
    assert failed['experiment'].iloc[0] == 'kernel_regression'  # from config.yaml
    assert (frame['wall_time_s'] == 2.5).all()
    # A swept parameter the rows do not carry comes from the overrides.
    assert set(frame.loc[frame['status'] == 'ok', 'kernels']) == {'["nngp", "ntk"]'}
    row = frame[(frame['metric'] == 'accuracy') & (frame['kernel'] == 'ntk') &
                (frame['diag_reg'] == 1e-3) & (frame['seed'] == 1) &
                (frame['n_train'] == 100)]
    assert row['value'].iloc[0] == pytest.approx(fake_accuracy('ntk', 1e-3, 100, 1))
    assert np.isinf(row['t'].iloc[0])


def test_a_swept_key_named_like_a_row_column_gets_its_dotted_column(tmp_path):
    """``dataset.seed`` (the data subset) beside the init ``seed`` column: a
    column ``dataset.seed`` with the resolved value (``${seed}`` and the
    like), which the summary averages over like the init seed; an override
    equal to its row column (``model.width=512``) adds nothing."""
    for name, data_seed in (('a', 3), ('b', 4), ('c', 0)):
        run_dir = write_run(tmp_path / 'runs', name, seed=0,
                            overrides=['dataset.seed=$\\{seed\\}', 'model.width=512'])
        cfg = yaml.safe_load((run_dir / records.CONFIG_YAML).read_text())
        cfg['dataset']['seed'] = data_seed
        (run_dir / records.CONFIG_YAML).write_text(yaml.safe_dump(cfg))
    frame = collect.collect([tmp_path / 'runs'])
    assert sorted(frame['dataset.seed'].unique()) == [0, 3, 4]  # 0: the init seed's value
    assert (frame['seed'] == 0).all() and 'model.width' not in frame.columns
    summary = collect.summarize(frame)
    entry = summary[(summary['metric'] == 'accuracy') & (summary['kernel'] == 'nngp')
                    & (summary['diag_reg'] == 1e-2)]
    assert 'dataset.seed' not in entry.columns
    assert entry['count'].item() == entry['n_seeds'].item() == 3
    # Without a seed override the name is free, and still not the init seed's.
    run_dir = write_run(tmp_path / 'alone', 'd', seed=0, overrides=['dataset.seed=5'])
    (run_dir / '.hydra' / 'overrides.yaml').write_text(yaml.safe_dump(['dataset.seed=5']))
    frame = collect.collect([tmp_path / 'alone'])
    assert (frame['dataset.seed'] == 5).all() and (frame['seed'] == 0).all()


def test_collect_of_a_sweep_takes_the_runs_its_skipped_jobs_point_to(tmp_path, capsys):
    """A sweep that skipped a job (its config had already run ok elsewhere:
    ``jobs/<n>.json`` with ``same_as``) is collected whole: the earlier run's
    rows are in the table, once, and the CLI says where they came from."""
    from ntkexp import sweep  # pylint: disable=g-import-not-at-top
    earlier = write_run(tmp_path / 'runs' / 'first_sweep', 'seed0', seed=0)
    write_run(tmp_path / 'runs' / 'second_sweep', 'seed1', seed=1)
    second = tmp_path / 'runs' / 'second_sweep'
    sweep.write_job_record(second, 0, {'overrides': ['seed=0'], 'status': 'skipped',
                                       'run_dir': None, 'same_as': str(earlier)})
    sweep.write_job_record(second, 1, {'overrides': ['seed=1'], 'status': 'ok',
                                       'run_dir': str(second / 'seed1')})
    frame = collect.collect([second])
    assert sorted(frame.drop_duplicates('run_dir')['seed']) == [0, 1]
    assert len(frame) == 2 * 13  # each run's 13 rows, none twice
    # Both sweeps given: the earlier run still counts once.
    assert len(collect.collect([tmp_path / 'runs'])) == 2 * 13
    cli.main(['collect', str(second), '-o', str(tmp_path / 'out' / 'table')])
    out = capsys.readouterr().out
    assert 'from 2 runs' in out and f'1 of them outside {second}' in out
    # A record pointing at a run that is gone adds nothing.
    sweep.write_job_record(second, 2, {'overrides': ['seed=2'], 'status': 'skipped',
                                       'same_as': str(tmp_path / 'gone')})
    assert len(collect.collect([second])) == 2 * 13


def test_summary_is_mean_and_std_over_seeds(runs):
    frame = collect.collect([runs])
    summary = collect.summarize(frame)
    assert 'run_dir' not in summary.columns and 'seed' not in summary.columns
    entry = summary[(summary['metric'] == 'accuracy') & (summary['kernel'] == 'nngp') &
                    (summary['diag_reg'] == 1e-2) & (summary['n_train'] == 20)]
    assert len(entry) == 1
    values = [fake_accuracy('nngp', 1e-2, 20, s) for s in range(3)]
    assert entry['mean'].iloc[0] == pytest.approx(np.mean(values))
    assert entry['std'].iloc[0] == pytest.approx(np.std(values, ddof=1))
    assert entry['count'].iloc[0] == 3 and entry['n_seeds'].iloc[0] == 3
    # 2 n_train x (1 kernel_seconds + 2 kernels x 3 regs x 2 metrics) settings.
    assert len(summary) == 2 * 13


@pytest.mark.parametrize('pairs, override', [
    ([(0, 0), (1, 1), (2, 2)], 'dataset.seed=${seed}'),   # lee2020-validation's
    ([(0, 0), (0, 1), (1, 0), (1, 1)], None),             # a grid of both seeds
])
def test_summary_averages_over_the_data_seed_too(pairs, override, tmp_path):
    """dataset.seed draws the data subset: a replicate like the init seed,
    not a setting (the summary used to give each subset its own line)."""
    for seed, data_seed in pairs:
        write_run(tmp_path, f'{seed}_{data_seed}', seed=seed, data_seed=data_seed,
                  overrides=[override or f'dataset.seed={data_seed}'])
    frame = collect.collect([tmp_path])
    assert set(zip(frame['seed'], frame['dataset.seed'])) == set(pairs)
    summary = collect.summarize(frame)
    assert 'dataset.seed' not in summary.columns and len(summary) == 13
    entry = summary[(summary['metric'] == 'accuracy') & (summary['kernel'] == 'ntk') &
                    (summary['diag_reg'] == 1e-3)]
    values = [fake_accuracy('ntk', 1e-3, 100, seed) for seed, _ in pairs]
    assert entry['mean'].item() == pytest.approx(np.mean(values))
    assert entry['count'].item() == entry['n_seeds'].item() == len(pairs)


def test_summary_of_runs_with_and_without_a_data_seed(tmp_path):
    """nads generates its data (no dataset.seed) beside runs that have one:
    the summary used to fail joining a missing seed as text."""
    write_run(tmp_path, 'a', seed=0, data_seed=1, overrides=['dataset.seed=1'])
    write_run(tmp_path, 'b', seed=1, experiment='nads')
    frame = collect.collect([tmp_path])
    assert frame['dataset.seed'].isna().sum() == 13 and (frame['dataset.seed'] == 1).sum() == 13
    summary = collect.summarize(frame)
    assert len(summary) == 2 * 13 and (summary['n_seeds'] == 1).all()


def test_summary_counts_a_config_that_ran_twice_once(tmp_path):
    write_run(tmp_path, 'old', finished='2024-01-01T00:00:00', config_hash='same')
    new = write_run(tmp_path, 'new', seed=1, finished='2024-02-01T00:00:00',
                    config_hash='same')
    summary = collect.summarize(collect.collect([tmp_path]))
    assert (summary['count'] == 1).all()
    entry = summary[(summary['metric'] == 'accuracy') & (summary['kernel'] == 'ntk') &
                    (summary['diag_reg'] == 1e-4)]
    assert entry['mean'].iloc[0] == pytest.approx(fake_accuracy('ntk', 1e-4, 100, 1))
    assert new.exists()


def test_collect_cli_writes_parquet_and_csv_that_round_trip(runs, tmp_path, capsys):
    out = tmp_path / 'tables' / 'table'
    cli.main(['collect', str(runs), '-o', str(out)])
    printed = capsys.readouterr().out
    assert '6 ok' in printed and '1 failed' in printed and 'failed_early' in printed
    table = pd.read_parquet(out.with_suffix('.parquet'))
    assert len(table) == 6 * 13 + 1 and np.isinf(table['t'].dropna()).all()
    direct = collect.collect([runs])
    assert list(table.columns) == list(direct.columns)
    for column in ('value', 'seed', 'diag_reg', 'n_train', 'wall_time_s'):
        np.testing.assert_array_equal(table[column].to_numpy(float),
                                      direct[column].to_numpy(float))
    assert list(table['status']) == list(direct['status'])
    summary = pd.read_csv(out.with_suffix('.csv'))
    assert {'mean', 'std', 'count', 'metric', 'kernel', 'diag_reg'} <= set(summary.columns)


def test_collect_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(['collect', str(tmp_path), '-o', str(tmp_path / 't')])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'no runs' in err
    with pytest.raises(SystemExit):
        cli.main(['collect', str(tmp_path / 'missing')])
    assert 'no such directory' in capsys.readouterr().err


def test_run_killed_without_a_record_is_reported_killed(tmp_path, capsys):
    """SIGKILL (the out-of-memory killer, ``kill -9``) leaves status.json at
    "running"; collect tells such a run from a live one by its pid."""
    alive = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    dead = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    try:
        for name, process in (('live', alive), ('gone', dead)):
            run_dir = write_run(tmp_path / 'runs', name, status='running')
            status = records.read_status(run_dir)
            status.update(pid=process.pid, device={'host': socket.gethostname()})
            records.write_json_atomic(run_dir / records.STATUS_JSON, status)
        other_host = write_run(tmp_path / 'runs', 'elsewhere', status='running')
        status = records.read_status(other_host)
        status.update(pid=dead.pid, device={'host': 'another-node'})
        records.write_json_atomic(other_host / records.STATUS_JSON, status)
        table = collect.collect([tmp_path / 'runs']).drop_duplicates('run_dir')
        by_run = dict(zip(table.run_dir.map(lambda d: Path(d).name), table.status))
        assert by_run == {'live': 'running', 'gone': 'killed', 'elsewhere': 'running'}
        cli.main(['collect', str(tmp_path / 'runs'), '-o', str(tmp_path / 't')])
        printed = capsys.readouterr().out
        assert f'killed: {tmp_path / "runs" / "gone"}: recorded as running' in printed
        assert '(1 killed, 2 running)' in printed
    finally:
        alive.kill()
        alive.wait()


def test_run_with_a_cut_status_record_says_so(tmp_path, capsys):
    run_dir = write_run(tmp_path / 'runs', 'cut', status='ok')
    text = (run_dir / records.STATUS_JSON).read_text()
    (run_dir / records.STATUS_JSON).write_text(text[:len(text) // 2])
    cli.main(['collect', str(tmp_path / 'runs'), '-o', str(tmp_path / 't')])
    printed = capsys.readouterr().out
    assert (f'unknown: {run_dir}: status.json is unreadable (cut short or not '
            'JSON); the rows written are kept') in printed
    table = pd.read_parquet(tmp_path / 't.parquet')
    assert (table.metric == 'mse').any()  # the rows are there


def test_arrow_safe_mixed_types_round_trip(tmp_path):
    frame = pd.DataFrame({'k': [1, 'wide', None], 'x': [1, 2.5, None],
                          'metric': ['a', 'b', 'c'], 'value': [1.0, 2.0, 3.0]})
    path = tmp_path / 'mixed.parquet'
    records.arrow_safe(frame).to_parquet(path)
    back = pd.read_parquet(path)
    assert list(back['k'][:2]) == ['1', 'wide'] and back['k'].isna().iloc[2]
    assert back['x'].dtype.kind == 'f' and back['x'][1] == 2.5


def test_plot_kernel_regression_figures_and_generic_fallback(runs, tmp_path, capsys):
    write_run(runs, 'other', experiment='unknown_experiment',
              run='ntkexp.experiments.nonexistent_module.run')
    out = tmp_path / 'table'
    cli.main(['collect', str(runs), '-o', str(out)])
    figures = tmp_path / 'figures'
    cli.main(['plot', str(out) + '.parquet', '-o', str(figures)])
    printed = capsys.readouterr().out
    kr = figures / 'kernel_regression'
    for name in ('diag_reg', 'n_train', 'nngp_vs_ntk'):
        for suffix in ('png', 'pdf'):
            path = kr / f'{name}.{suffix}'
            assert path.exists() and 1000 < path.stat().st_size < 300_000, path
    assert not (kr / 'time.png').exists()  # no finite t in these runs
    assert 'no figures module' in printed and 'unknown_experiment' in printed
    assert (figures / 'unknown_experiment' / 'accuracy.png').exists()


def test_generic_figure_averages_over_repetitions():
    """An experiment without a figures module that numbers its random
    initialisations (``init``) gets one line per setting with the mean and
    std over them, not a line per initialisation."""
    rows = pd.DataFrame([
        dict(experiment='mine', metric='distance', width=w, init=i, depth=d,
             seed=0, value=d / w ** 0.5 + 0.01 * i)
        for w in (16, 64, 256) for i in range(3) for d in (1, 2)])
    x, lines = plot.generic_lines(rows)
    assert x == 'width' and sorted(lines) == ['depth=1', 'depth=2']
    stats = lines['depth=2']
    assert stats.index.tolist() == [16, 64, 256]
    np.testing.assert_allclose(stats['mean'], 2 / np.array([4, 8, 16]) + 0.01)
    np.testing.assert_allclose(stats['std'], 0.01)
    # A repetition column with no other setting: one unlabelled line.
    x, lines = plot.generic_lines(rows[rows['depth'] == 1].drop(columns='depth'))
    assert x == 'width' and list(lines) == ['']


def test_plot_straight_from_run_directories(runs, tmp_path, capsys):
    """``ntkexp plot runs/`` collects on the fly: the same figures as from the
    collected table; a directory without runs is one line."""
    out = tmp_path / 'table'
    cli.main(['collect', str(runs), '-o', str(out)])
    cli.main(['plot', str(out) + '.parquet', '-o', str(tmp_path / 'from_table')])
    cli.main(['plot', str(runs), '-o', str(tmp_path / 'from_dirs')])
    capsys.readouterr()
    names = lambda root: sorted(p.relative_to(root).as_posix()
                                for p in root.rglob('*.png'))
    assert names(tmp_path / 'from_dirs') == names(tmp_path / 'from_table') != []
    direct = plot.usable_rows(plot.read_inputs([runs]))
    stored = plot.usable_rows(plot.read_table(out.with_suffix('.parquet')))
    assert direct['value'].tolist() == stored['value'].tolist() != []
    assert direct['metric'].tolist() == stored['metric'].tolist()
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit) as exit_:
        cli.main(['plot', str(tmp_path / 'empty')])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'no runs (directories with status.json)' in err


def test_plot_finds_the_figures_of_the_experiment_function(tmp_path):
    """A paper-figure config with its own name is drawn by its experiment's module."""
    for seed in range(2):
        write_run(tmp_path / 'runs', f's{seed}', seed=seed,
                  experiment='arora2020_small_data')
    frame = collect.collect([tmp_path / 'runs'])
    plotter, module = plot.find_plotter('arora2020_small_data', frame)
    assert module == 'ntkexp.plots.kernel_regression'
    written = plot.plot_table(frame, tmp_path / 'figs')
    names = {p.name for p in written['arora2020_small_data']}
    assert {'diag_reg.png', 'diag_reg.pdf', 'nngp_vs_ntk.png'} <= names


def test_plot_reads_the_summary_csv_and_fails_clearly(runs, tmp_path, capsys):
    out = tmp_path / 'table'
    collect.write(collect.collect([runs]), out)
    frame = plot.read_table(out.with_suffix('.csv'))
    assert 'value' in frame.columns
    written = plot.plot_table(frame, tmp_path / 'from_csv')
    assert any(p.name == 'n_train.png' for p in written['kernel_regression'])
    with pytest.raises(SystemExit) as exit_:
        cli.main(['plot', str(tmp_path / 'nothing.parquet')])
    assert exit_.value.code == 2
    assert 'no table or run directory' in capsys.readouterr().err


def test_time_figure_when_t_is_finite(tmp_path):
    from ntkexp.plots import kernel_regression as kr_plots
    rows = []
    for kernel in ('nngp', 'ntk'):
        for t in (1.0, 10.0, 100.0, math.inf):
            for metric, value in (('mse', 1 / (1 + t)), ('train_mse', 0.5 / (1 + t))):
                rows.append(dict(experiment='kernel_regression', model='fc',
                                 dataset='digits', seed=0, kernel=kernel,
                                 diag_reg=1e-4, t=t, n_train=100, metric=metric,
                                 value=value))
    paths = kr_plots.plot(pd.DataFrame(rows), tmp_path)
    assert (tmp_path / 'time.png').exists() and (tmp_path / 'time.pdf').exists()
    assert tmp_path / 'nngp_vs_ntk.png' in paths


def test_results_readme_explains_the_layout():
    text = (cli.CONF_DIR.parent / 'results' / 'README.md').read_text()
    assert 'ntkexp collect' in text and 'README.md' in text


def kr_rows(model: str, dataset: str, diag_regs=(1e-4,), n_trains=(100,),
            zca=None, activation='relu') -> list[dict]:
    """kernel_regression rows (t = inf) of one model and dataset, both kernels."""
    rows = []
    for kernel in ('nngp', 'ntk'):
        for diag_reg in diag_regs:
            for n_train in n_trains:
                acc = fake_accuracy(kernel, diag_reg, n_train, 0)
                for metric, value in (('accuracy', acc), ('mse', 1.0 - acc)):
                    rows.append(dict(experiment='kernel_regression', model=model,
                                     dataset=dataset, seed=0, kernel=kernel,
                                     diag_reg=diag_reg, t=math.inf, n_train=n_train,
                                     zca=zca, activation=activation,
                                     metric=metric, value=value))
    return rows


def drawn_figures(monkeypatch, frame: pd.DataFrame) -> dict:
    """The kernel_regression figures of ``frame``, by name, drawn and kept open."""
    from ntkexp.plots import kernel_regression as kr_plots
    kept = {}
    monkeypatch.setattr(plot_figures, 'save', lambda fig, out_dir, name, *args, **kwargs:
                        kept.setdefault(name, fig) and [])
    with tempfile.TemporaryDirectory() as out_dir:  # the tables it writes
        kr_plots.plot(frame, Path(out_dir))
    return kept


def test_diag_reg_figure_of_unrelated_runs_draws_only_sweeps(monkeypatch):
    """A table collected from unrelated runs: a line of one diag_reg is no sweep
    and is not drawn; a panel without a sweep says so; one label is one line
    style in every panel (FC alone in one panel is still 'FC NNGP')."""
    frame = pd.DataFrame(
        kr_rows('fc', 'digits', (1e-4, 1e-3, 1e-2))
        + kr_rows('fc', 'digits', (1e-4, 1e-2), zca=0.1)
        + kr_rows('myrtle', 'digits')                  # one diag_reg: no sweep
        + kr_rows('cnn_gap', 'mnist', (1e-4, 1e-2))
        + kr_rows('fc', 'mnist', zca=0.1))             # one diag_reg: no sweep
    fig = drawn_figures(monkeypatch, frame)['diag_reg']
    axes = fig.axes
    assert len(axes) == 2 * 4  # datasets x (accuracy, MSE) x (no ZCA, ZCA 0.1)
    titles = [ax.get_title() for ax in axes]
    assert titles[:4] == ['digits, no ZCA', 'digits, ZCA 0.1'] * 2
    empty = [ax for ax in axes if not ax.axison]
    assert [ax.get_title() for ax in empty] == ['mnist, ZCA 0.1'] * 2
    assert all('no $\\varepsilon$ sweep' in ax.texts[0].get_text() for ax in empty)
    styles = {}
    for ax in axes:
        for line in ax.get_lines():
            assert len(line.get_xdata()) >= 2, line.get_label()
            styles.setdefault(line.get_label(), set()).add(
                (line.get_color(), line.get_linestyle()))
    assert sorted(styles) == ['CNN-GAP NNGP', 'CNN-GAP NTK', 'FC NNGP', 'FC NTK']
    assert all(len(s) == 1 for s in styles.values())
    assert len(set.union(*styles.values())) == 4
    assert all(ax.get_xscale() == 'log' for ax in axes if ax.axison)
    legend, = fig.legends
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(styles)
    plot_figures.pyplot().close('all')


def test_long_legend_grows_the_figure_instead_of_hiding_the_panels(monkeypatch):
    """Fourteen lines with long labels: the legend sits below the panels, which
    keep their size and do not overlap it (before, constrained layout gave up
    and the legend covered the axes); lines that differ in more than their
    kernel differ in colour (before, colour was the model's alone)."""
    import warnings
    rows = []
    for activation in ('relu', 'erf', 'gelu', 'abs', 'sin', 'tanh', 'sign'):
        rows += kr_rows('fc', 'digits', n_trains=(10, 100, 1000),
                        activation=f'{activation}-with-a-long-name')
    fig = drawn_figures(monkeypatch, pd.DataFrame(rows))['n_train']
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # "constrained_layout not applied"
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend, = fig.legends
    assert len(legend.get_texts()) == 14
    # One colour per activation, NNGP (dashed) and NTK (solid) sharing it.
    ax, = fig.axes
    colours = {}
    for line in ax.get_lines():
        colours.setdefault(line.get_label().split(' ', 1)[1], set()).add(line.get_color())
    assert len(colours) == 7 and all(len(c) == 1 for c in colours.values())
    assert len(set.union(*colours.values())) == 7
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        panel = ax.get_window_extent(renderer)
        assert panel.height > 2.0 * fig.dpi and panel.width > 2.0 * fig.dpi
        assert not panel.overlaps(box)
    plot_figures.pyplot().close('all')


def test_large_png_is_resaved_as_the_same_picture_in_a_palette(tmp_path, monkeypatch):
    """A PNG over MAX_PNG_BYTES is re-saved with 256 colours: the same size
    and, on white, the same pixels within a few levels."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    plt = plot_figures.pyplot()

    def draw():
        fig, ax = plt.subplots(figsize=(4, 3))
        for i in range(6):
            ax.plot(np.sin(np.linspace(0, 6, 50) + i), f'C{i}', label=f'line {i}')
        ax.legend()
        return fig

    full = plot_figures.save(draw(), tmp_path / 'full', 'f')[0]
    monkeypatch.setattr(plot_figures, 'MAX_PNG_BYTES', 1000)
    small = plot_figures.save(draw(), tmp_path / 'small', 'f')[0]
    assert small.stat().st_size < full.stat().st_size
    with Image.open(full) as a, Image.open(small) as b:
        assert b.mode == 'P' and a.size == b.size
        white = Image.new('RGBA', a.size, 'white')
        white.alpha_composite(a.convert('RGBA'))
        before = np.asarray(white.convert('RGB'), float)
        after = np.asarray(b.convert('RGB'), float)
    assert np.abs(before - after).max(axis=-1).mean() < 2.0
    assert np.percentile(np.abs(before - after).max(axis=-1), 99) < 16


def test_legend_labels_say_integers_and_single_widths_plainly():
    from ntkexp.plots import finite_width as fw_plots
    from ntkexp.plots import nads as nads_plots
    labels = nads_plots._labels(pd.DataFrame(  # pylint: disable=protected-access
        {'model': ['fc', 'fc', 'cnn'], 'n_train': [128.0, 256.0, 64.5]}))
    assert list(labels) == ['fc n_train=128', 'fc n_train=256', 'cnn']
    plt = plot_figures.pyplot()
    fig, ax = plt.subplots()
    rows = pd.DataFrame({'model': ['fc', 'fc', 'resnet', 'resnet'],
                         'width': [64, 256, 64, 64], 'seed': [0, 0, 0, 1],
                         'value': [0.2, 0.1, 0.3, 0.32]})
    fits = fw_plots.loglog_by_model(ax, rows)
    labels = sorted(ax.get_legend_handles_labels()[1])
    plt.close(fig)
    assert labels[0].startswith('FC') and 'slope -0.50' in labels[0]
    assert labels[1].endswith('(one width: no slope)') and 'nan' not in labels[1]
    assert math.isnan(fits[1]['slope'])


def test_make_collect_and_plot_run_the_cli(tmp_path):
    """`make collect` / `make plot` (DESIGN.md's Makefile targets; they were
    listed as phony but did nothing) run ntkexp collect / plot on RUNS, TABLE
    and FIGURES."""
    import shutil  # pylint: disable=g-import-not-at-top
    if shutil.which('make') is None:
        pytest.skip('no make')
    repo = Path(cli.CONF_DIR).parent
    out = subprocess.run(
        ['make', '-n', 'collect', 'plot', f'RUNS={tmp_path}/runs', f'TABLE={tmp_path}/t',
         f'FIGURES={tmp_path}/f'], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert f'ntkexp collect {tmp_path}/runs -o {tmp_path}/t' in out
    assert f'ntkexp plot {tmp_path}/t.parquet -o {tmp_path}/f' in out


def test_every_architecture_has_a_label_of_its_own():
    """wrn and wrn_nt were both 'WRN': two bars of one name in a figure."""
    from ntkexp.plots import figures  # pylint: disable=g-import-not-at-top
    labels = figures.MODEL_LABELS
    assert len(set(labels.values())) == len(labels)
    assert set(labels) == {p.stem for p in (cli.CONF_DIR / 'model').glob('*.yaml')}


def test_settings_swept_within_a_model_are_lines_not_seeds():
    """Two FC runs at different lr_kernel or n_train were averaged as if they
    were seeds (the width figure said 'seeds=4' of four seed-0 runs); a
    setting that differs only between models (FC's W_std beside the
    ResNet's) is the model's own and adds nothing."""
    from ntkexp.plots import rows as plot_rows  # pylint: disable=g-import-not-at-top
    frame = pd.DataFrame([
        dict(model='fc', W_std=1.41, lr_kernel='analytic', n_train=32, b_std=0.1),
        dict(model='fc', W_std=1.41, lr_kernel='empirical', n_train=32, b_std=0.1),
        dict(model='resnet', W_std=1.0, lr_kernel='analytic', n_train=32, b_std=None),
        dict(model='resnet', W_std=1.0, lr_kernel='analytic', n_train=32, b_std=np.nan)])
    assert plot_rows.line_columns(frame) == ['model', 'lr_kernel']
    frame.loc[3, 'n_train'] = 16
    assert plot_rows.line_columns(frame) == ['model', 'n_train', 'lr_kernel']


def test_width_figure_has_a_panel_per_setting_swept_beside_the_width(tmp_path):
    """nth's committed figure averaged FC erf and FC relu as if they were
    seeds ('seeds' 6 of 3 seeds x 2 activations): now a panel each."""
    from ntkexp.plots.finite_width import accuracy  # pylint: disable=g-import-not-at-top
    rows = []
    for activation, level in (('erf', 0.5), ('relu', 0.7)):
        for seed in range(3):
            for width in (64, 128, 256):
                run = f'{activation}-{seed}'
                for step, value in ((0, 0.1), (10, level + 0.01 * seed)):
                    rows.append(dict(model='fc', parameterization='ntk', activation=activation,
                                     predictor='net', width=width, seed=seed, run_dir=run,
                                     step=step, metric='test_accuracy', value=value))
    paths = accuracy.plot_width_accuracy(pd.DataFrame(rows), tmp_path, 'sweep')
    stats = pd.read_csv(tmp_path / 'sweep_width_accuracy.csv')
    assert tmp_path / 'sweep_width_accuracy.csv' in paths
    assert len(stats) == 2 * 3 and (stats['seeds'] == 3).all()
    best = stats.groupby('activation')['best'].mean()
    assert best.to_dict() == pytest.approx({'erf': 0.51, 'relu': 0.71})


def test_ntk_at_init_title_counts_the_initialisations_of_each_line(tmp_path, saved_figures):
    """It said the fewest rows at any width ('over 2'), whatever the lines had."""
    from ntkexp.plots import ntk_at_init  # pylint: disable=g-import-not-at-top
    frame = pd.DataFrame([
        dict(experiment='ntk_at_init', model=model, width=width, init=i,
             metric='relative_distance', value=1 / np.sqrt(width) + 0.001 * i)
        for model, inits in (('fc', 3), ('cnn', 6)) for width in (64, 256)
        for i in range(inits)])
    ntk_at_init.plot(frame, tmp_path)
    assert 'over 3-6 initialisations' in saved_figures['relative_distance'].axes[0].get_title()
    ntk_at_init.plot(frame[frame['model'] == 'cnn'], tmp_path)
    assert 'over 6 initialisations' in saved_figures['relative_distance'].axes[0].get_title()


def test_nngp_against_ntk_gives_every_dataset_its_marker(tmp_path, saved_figures):
    """Five markers for seven datasets left two drawn as the first one's."""
    from ntkexp.plots.kernel_regression import architectures  # pylint: disable=g-import-not-at-top
    datasets = ['cifar10', 'cifar100', 'circle', 'digits', 'gaussian', 'mnist', 'sphere']
    frame = pd.DataFrame([
        dict(experiment='kernel_regression', model=model, dataset=dataset, kernel=kernel,
             diag_reg=1e-4, t=np.inf, metric='accuracy', value=0.5 + 0.01 * i,
             status='ok', seed=0)
        for i, dataset in enumerate(datasets) for model in ('fc', 'cnn')
        for kernel in ('nngp', 'ntk')])
    architectures.plot_nngp_vs_ntk(frame, tmp_path)
    (ax,) = saved_figures['nngp_vs_ntk'].axes
    paths = {}
    for collection, text in zip(ax.collections, [t.get_text() for t in ax.get_legend().texts]):
        paths[text.split(', ')[-1]] = collection.get_paths()[0].vertices.tobytes()
    assert len(paths) == len(datasets) and len(set(paths.values())) == len(datasets)
