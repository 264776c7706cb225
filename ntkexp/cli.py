"""The ``ntkexp`` command: ``run`` (one job or a Hydra sweep), ``collect``, ``plot``.

    ntkexp run                                  # default: kernel regression, FC, digits
    ntkexp run experiment=alignment model=wrn   # any model x dataset x experiment
    ntkexp run -m model.width=128,512           # a sweep (Hydra multirun)
    ntkexp collect runs/ -o results/table       # every run -> one parquet + CSV
    ntkexp plot results/table.parquet -o figs/  # each experiment's figures

The logic lives in :mod:`ntkexp.runner` (and the experiment modules); this
module only parses the command line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / 'conf'

# Config groups a user picks with `group=choice` on the command line.
GROUPS = ('model', 'dataset', 'experiment', 'paths')

log = logging.getLogger('ntkexp')


def _fail(message: str, code: int = 2) -> 'NoReturn':  # noqa: F821
    print(f'ntkexp: error: {message}', file=sys.stderr)
    raise SystemExit(code)


def available(group: str) -> list[str]:
    """The choices of a config group (the YAML files under ``conf/<group>/``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob('*.yaml'))


def check_group_overrides(overrides: list[str]) -> None:
    """Fails with one line for `group=choice` overrides naming no config file.

    Hydra's own message spans many lines; this names the group, the bad
    choice and the valid ones.
    """
    for override in overrides:
        key, sep, value = override.lstrip('+~').partition('=')
        if not sep or key not in GROUPS:
            continue
        choices = available(key)
        for choice in value.split(','):
            if choice.startswith(('choice(', 'range(', 'glob(')):
                continue
            if choice not in choices:
                _fail(f"unknown {key} '{choice}'; choose one of: "
                      f"{', '.join(choices)} (e.g. {key}={choices[0]})")


def _hydra_main(argv: list[str]) -> None:
    """Runs Hydra's main with ``argv`` (overrides and Hydra flags)."""
    import hydra  # pylint: disable=g-import-not-at-top
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
    from omegaconf import DictConfig  # pylint: disable=g-import-not-at-top

    import ntkexp  # noqa: F401  (makes neural-tangents importable)
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    from ntkexp import report  # pylint: disable=g-import-not-at-top

    @hydra.main(config_path=str(CONF_DIR), config_name='config',
                version_base='1.3')
    def task(cfg: DictConfig) -> None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if cfg.get('skip_done', True):
            from ntkexp import records  # pylint: disable=g-import-not-at-top
            done = records.find_finished_run(Path(cfg.paths.runs),
                                             records.config_hash(cfg))
            if done is not None and done.resolve() != run_dir.resolve():
                print(f'ntkexp: skipped, this config already ran ok in {done} '
                      '(pass skip_done=false to run it again)')
                runner.cleanup_failed_start(run_dir)
                return
        try:
            frame = runner.run_job(cfg, run_dir)
        except runner.ConfigError as error:
            runner.cleanup_failed_start(run_dir)
            _fail(str(error))
        except (ValueError, FileNotFoundError) as error:
            print(f'ntkexp: error: {error}\n(status and rows so far: '
                  f'{run_dir})', file=sys.stderr)
            raise SystemExit(1) from None
        print(report.summary_table(frame))
        print(f'run directory: {run_dir}')

    sys.argv = ['ntkexp run'] + argv
    task()  # pylint: disable=no-value-for-parameter


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ntkexp`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog='ntkexp', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n')[1])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='run one job, or a sweep with -m',
                         add_help=False)
    run.add_argument('overrides', nargs=argparse.REMAINDER)
    collect = sub.add_parser('collect', help='gather runs into one table')
    collect.add_argument('dirs', nargs='+', type=Path)
    collect.add_argument('-o', '--out', type=Path, default=Path('results/table'),
                         help='output path without suffix (.parquet and '
                         '.csv are written)')
    plot = sub.add_parser('plot', help="draw each experiment's figures")
    plot.add_argument('table', type=Path, help='a table from `ntkexp collect`')
    plot.add_argument('-o', '--out', type=Path, default=Path('results/figures'))

    if argv and argv[0] == 'run':
        overrides = argv[1:]
        if overrides and overrides[0] in ('-h', '--help') and len(overrides) == 1:
            print(__doc__)
            print('Config groups:')
            for group in GROUPS:
                print(f"  {group}: {', '.join(available(group))}")
            print('\nHydra help: ntkexp run --hydra-help')
            return
        check_group_overrides(overrides)
        _hydra_main(overrides)
        return

    args = parser.parse_args(argv)
    if args.command == 'collect':
        from ntkexp import collect as collect_mod  # pylint: disable=g-import-not-at-top
        collect_mod.main(args.dirs, args.out)
    elif args.command == 'plot':
        from ntkexp import plot as plot_mod  # pylint: disable=g-import-not-at-top
        plot_mod.main(args.table, args.out)


if __name__ == '__main__':
    main()
