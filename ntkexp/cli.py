"""The ``ntkexp`` command: ``run`` (one job or a Hydra sweep), ``collect``, ``plot``.

    ntkexp run                                  # default: kernel regression, FC, digits
    ntkexp run experiment=alignment model=wrn   # any model x dataset x experiment
    ntkexp run -m model.width=128,512           # a sweep (Hydra multirun)
    ntkexp collect runs/ -o results/table       # every run -> one parquet + CSV
    ntkexp plot results/table.parquet -o figs/  # each experiment's figures
    ntkexp plot runs/ -o figs/                  # (or straight from run directories)

The logic lives in :mod:`ntkexp.runner` (and the experiment modules); this
module only parses the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / 'conf'

# Config groups a user picks with `group=choice` on the command line.
GROUPS = ('model', 'dataset', 'experiment', 'paths')
# Launchers Hydra's plugins register (no YAML file under conf/hydra/launcher/).
BUILTIN_LAUNCHERS = ('basic', 'joblib', 'submitit_local', 'submitit_slurm')

log = logging.getLogger('ntkexp')


def _fail(message: str, code: int = 2) -> 'NoReturn':  # noqa: F821
    print(f'ntkexp: error: {message}', file=sys.stderr)
    raise SystemExit(code)


def _stopped(error: BaseException, run_dir: Path) -> 'NoReturn':  # noqa: F821
    """One line for a run stopped by Ctrl-C or SIGTERM (its status.json says
    so), and the shell's exit status for it (130, 128 + the signal)."""
    from ntkexp import interrupts  # pylint: disable=g-import-not-at-top
    from ntkexp import records  # pylint: disable=g-import-not-at-top
    print(f'ntkexp: stopped: {records.error_text(error)}\n(status and rows so '
          f'far: {run_dir})', file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(interrupts.exit_code(error)) from None


def available(group: str) -> list[str]:
    """The choices of a config group (the YAML files under ``conf/<group>/``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob('*.yaml'))


def launchers() -> list[str]:
    """Sweep launchers: the presets under ``conf/hydra/launcher/`` and Hydra's."""
    return sorted(set(available('hydra/launcher')) | set(BUILTIN_LAUNCHERS))


# Hydra flags that take a value (the value is not an override).
_VALUE_FLAGS = ('-cp', '--config-path', '-cn', '--config-name', '-cd',
                '--config-dir', '-c', '--cfg', '-p', '--package', '-i', '--info',
                '--experimental-rerun', '--shell-completion')


def _is_override(argv: list[str], i: int) -> bool:
    """Whether ``argv[i]`` is a ``key=value`` override, not a Hydra flag or a
    flag's value."""
    arg = argv[i]
    return ('=' in arg and not arg.startswith('-') and
            (i == 0 or argv[i - 1] not in _VALUE_FLAGS))


def _is_sweep(argv: list[str]) -> bool:
    """Whether the command line asks for a sweep (``-m`` / ``--multirun``)."""
    return any(a in ('-m', '--multirun') for a in argv)


def check_override_syntax(overrides: list[str]) -> None:
    """Fails with one line for an override Hydra's grammar cannot read
    (``'dataset.classes=[4,9'``), or a sweep (``model.width=64,128``) without
    ``-m``: Hydra's own messages span several lines and point at its
    documentation and at ``HYDRA_FULL_ERROR``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # pylint: disable=g-import-not-at-top
    from hydra.errors import OverrideParseException  # pylint: disable=g-import-not-at-top

    parser = OverridesParser.create()
    multirun = _is_sweep(overrides)
    for i, override in enumerate(overrides):
        if not _is_override(overrides, i):
            continue
        try:
            (parsed,) = parser.parse_overrides([override])
            if parsed.is_sweep_override() and not multirun:
                key = parsed.key_or_group
                _fail(f"'{override}' gives several values, a sweep: add -m "
                      f"(ntkexp run -m {override} ...)"
                      + ('' if key in GROUPS or '/' in key else
                         f', or write one list value as {key}=[...]'))
        except OverrideParseException as error:
            reason = str(error).splitlines()[0]
            _fail(f"cannot read the override '{override}' ({reason}). To fix: "
                  "close its brackets and quotes, and quote it for the shell, e.g. "
                  "'dataset.classes=[4,9]'; a value with spaces or commas inside a "
                  "string: key='\"a, b\"'")


def check_inspection_flags(overrides: list[str]) -> None:
    """Fails with one line for ``--cfg`` / ``--info`` in a sweep (``-m``),
    which Hydra refuses with a traceback: they print one run's config."""
    flags = [a for a in overrides if a in ('-c', '--cfg', '-i', '--info')]
    if _is_sweep(overrides) and flags:
        _fail(f'{flags[0]} prints the config of one run, not of a sweep: drop -m and '
              'give one value per key (e.g. ntkexp run model.width=64 --cfg job; '
              'a launcher: ntkexp run hydra/launcher=slurm --cfg hydra -p hydra.launcher)')


def check_group_overrides(overrides: list[str]) -> None:
    """Fails with one line for `group=choice` overrides naming no config file.

    Hydra's own message spans many lines; this names the group, the bad
    choice and the valid ones.
    """
    for i, override in enumerate(overrides):
        key, _, value = override.lstrip('+~').partition('=')
        if not _is_override(overrides, i) or key not in GROUPS + ('hydra/launcher',):
            continue
        choices = launchers() if key == 'hydra/launcher' else available(key)
        for choice in value.split(','):
            if choice.startswith(('choice(', 'range(', 'glob(')):
                continue
            if choice not in choices:
                _fail(f"unknown {key} '{choice}'; choose one of: "
                      f"{', '.join(choices)} (e.g. {key}={choices[0]})")


def _slurm_launcher(name: str, seen: frozenset = frozenset()) -> bool:
    """Whether the launcher preset ``name`` submits to SLURM (``slurm``,
    Hydra's ``submitit_slurm``, or a preset whose defaults list one)."""
    if name in ('slurm', 'submitit_slurm'):
        return True
    path = CONF_DIR / 'hydra' / 'launcher' / f'{name}.yaml'
    if name in seen or not path.is_file():
        return False
    from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top
    try:
        defaults = OmegaConf.load(path).get('defaults') or []
    except Exception:  # pylint: disable=broad-except
        return False  # Hydra reports a broken preset itself
    return any(isinstance(d, str) and _slurm_launcher(d, seen | {name})
               for d in defaults)


def check_slurm_available(overrides: list[str]) -> None:
    """Fails with one line when a sweep asks for a SLURM launcher on a
    machine without SLURM (submitit would fail with a traceback per job)."""
    if not _is_sweep(overrides):
        return
    names = [o.partition('=')[2] for i, o in enumerate(overrides)
             if _is_override(overrides, i)
             and o.lstrip('+').partition('=')[0] == 'hydra/launcher']
    if not names or not _slurm_launcher(names[-1]):
        return
    missing = [c for c in ('sbatch', 'srun') if shutil.which(c) is None]
    if missing:
        _fail(f"hydra/launcher={names[-1]} submits the jobs to SLURM, but "
              f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
              "not on this machine's PATH: run the sweep on the cluster's login "
              'node, or try it here with hydra/launcher=slurm_local')


# Most group combinations a key check composes; past this Hydra reports alone.
_MAX_COMPOSES = 16


def _config_keys(node) -> list[str] | None:
    """The keys of a config node, or None if it is not a mapping."""
    from omegaconf import DictConfig  # pylint: disable=g-import-not-at-top
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else None


def _key_paths(node, prefix: str = ''):
    """Every dotted key below ``node`` (``hydra`` left out)."""
    for key in _config_keys(node) or []:
        path = f'{prefix}.{key}' if prefix else key
        if path == 'hydra':
            continue
        yield path
        try:
            child = node[key]
        except Exception:  # pylint: disable=broad-except
            continue  # a missing (???) value or an unresolved interpolation
        if child is not None:
            yield from _key_paths(child, path)


def unknown_key(cfg, key: str) -> str | None:
    """Why ``key`` (dotted) names no key of ``cfg``, or None if it does.

    Returns:
        A hint such as ``did you mean model.width?`` (a close spelling at the
        level that lacks it, or the same key under another node, as for
        ``optimizer`` -> ``experiment.optimizer``) or ``'model' has: depth,
        width, ...``; None for an existing key or one below a list or a null
        value (Hydra reports those itself).
    """
    import difflib  # pylint: disable=g-import-not-at-top
    node, parts = cfg, key.split('.')
    for depth, part in enumerate(parts):
        keys = _config_keys(node)
        if keys is None:
            return None
        if part not in keys:
            parent = '.'.join(parts[:depth])
            rest = '.'.join(parts[depth:])
            elsewhere = [p for p in _key_paths(cfg) if p.endswith('.' + rest)]
            if not elsewhere and depth < len(parts) - 1:
                # A missing node (experiment=nads has no dataset): its leaf
                # elsewhere (experiment.n_train for dataset.n_train).
                elsewhere = [p for p in _key_paths(cfg) if p.endswith('.' + parts[-1])]
            if elsewhere:
                return f"did you mean {' or '.join(elsewhere[:3])}?"
            close = difflib.get_close_matches(part, keys, n=3, cutoff=0.6)
            if close:
                names = (f'{parent}.{c}' if parent else c for c in close)
                return f"did you mean {' or '.join(names)}?"
            where = f"'{parent}'" if parent else 'the config'
            return f"{where} has: {', '.join(keys)}"
        try:
            node = node[part]
        except Exception:  # pylint: disable=broad-except
            return None  # a missing (???) value or an interpolation Hydra resolves
        if node is None:
            return None
    return None


def check_key_overrides(overrides: list[str]) -> None:
    """Fails with one line for ``a.b=value`` overrides of keys the config lacks.

    Hydra's own message spans six lines and suggests ``+a.b=value``, which
    adds a key that nothing reads. This composes the config for every choice
    of the groups on the command line (sweeps included) and names the closest
    keys. ``+key``, ``++key``, ``~key``, ``group@package`` and ``hydra.*``
    overrides are left to Hydra.
    """
    import itertools  # pylint: disable=g-import-not-at-top
    from hydra import compose, initialize_config_dir  # pylint: disable=g-import-not-at-top

    keys, groups, values = [], [], {}
    for i, override in enumerate(overrides):
        key, _, value = override.partition('=')
        if (not _is_override(overrides, i) or key.startswith(('+', '~'))
                or '@' in key or key.split('.')[0] == 'hydra'):
            continue  # Hydra's own: additions, deletions, packages, hydra.*
        if key in GROUPS or '/' in key:
            if value.startswith(('choice(', 'range(', 'glob(')):
                return  # Hydra's sweep functions: leave the check to Hydra
            groups.append([f'{key}={choice}' for choice in value.split(',')])
        else:
            keys.append(key)
            values[key] = _override_values(override)
    combos = list(itertools.islice(itertools.product(*groups), _MAX_COMPOSES + 1))
    if not keys or len(combos) > _MAX_COMPOSES:
        return
    for combo in combos:
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base='1.3'):
                cfg = compose('config', overrides=list(combo))
        except Exception:  # pylint: disable=broad-except
            # A composition error (or Hydra already set up by a caller):
            # Hydra reports it itself when the run starts.
            return
        for key in keys:
            hint = unknown_key(cfg, key)
            if hint:
                chosen = f" with {' '.join(combo)}" if combo else ''
                show = ' '.join(['ntkexp run', *combo, '--cfg job'])
                _fail(f"unknown key '{key}'{chosen}: {hint} (`{show}` prints "
                      'the config)')
            _check_switch(cfg, key, values[key])


def _override_values(override: str) -> list | None:
    """The values of one ``key=value`` override as Hydra parses them (a
    sweep's each), or None where Hydra cannot parse it (it says so itself)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # pylint: disable=g-import-not-at-top
    try:
        parsed = OverridesParser.create().parse_override(override)
        return (list(parsed.sweep_iterator()) if parsed.is_sweep_override()
                else [parsed.value()])
    except Exception:  # pylint: disable=broad-except
        return None


# Options false in some config files that also take names (auto, pallas, ...).
_NOT_SWITCHES = ('model.fast_kernel',)


def _check_switch(cfg, key: str, values: list | None) -> None:
    """Fails with one line when ``key`` is true/false in the config files but
    the command line gives it another value: ``experiment.variance=no`` is
    the string 'no', which Python's ``bool`` reads as true."""
    from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top
    try:
        default = OmegaConf.select(cfg, key, throw_on_missing=False)
    except Exception:  # pylint: disable=broad-except
        return
    if (not isinstance(default, bool) or values is None
            or key in _NOT_SWITCHES):
        return
    for value in values:
        if isinstance(value, bool) or (isinstance(value, str)
                                       and value.startswith('${')):
            continue
        shown = 'null' if value is None else repr(value)
        _fail(f'{key}={shown} is not true or false: {key} is a switch '
              f'(default {str(default).lower()}); use {key}=true or '
              f'{key}=false')


def _unwritable(path: Path) -> str | None:
    """Why the folder ``path`` cannot be made or written (None: it can).

    It is made here (the run would make it anyway), which also catches
    what permission bits do not tell (root, read-only or special mounts).
    """
    path = Path(path).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f'{error.strerror or error}: {error.filename or path}'
    if not os.access(path, os.W_OK | os.X_OK):
        return f'no permission to write in {path}'
    return None


def check_paths_writable(overrides: list[str]) -> None:
    """Fails with one line when ``paths.*`` overrides give a run or cache
    folder that cannot be written (Hydra would fail with a traceback)."""
    given = [o for i, o in enumerate(overrides)
             if _is_override(overrides, i) and o.startswith('paths.')]
    if not given or any(',' in o for o in given):
        return  # a sweep over paths: each job reports its own
    from hydra import compose, initialize_config_dir  # pylint: disable=g-import-not-at-top
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base='1.3'):
            cfg = compose('config', overrides=given)
        paths = {key: cfg.paths[key] for key in ('runs', 'cache')}
    except Exception:  # pylint: disable=broad-except
        return  # Hydra reports composition errors itself
    for key, value in paths.items():
        if value is None:
            continue
        why = _unwritable(Path(str(value)))
        if why:
            _fail(f'paths.{key}={value} cannot be used: {why}; give a folder '
                  f'you can write, e.g. paths.{key}=$HOME/ntkexp/{key} (or '
                  'paths.root=... for both)')


def _skip_if_done(cfg, run_dir: Path) -> Path | None:
    """With ``skip_done``: the run directory where this config already ran ok.

    If there is one (other than ``run_dir``), says so, removes what Hydra
    created in ``run_dir`` and returns it; else returns None.

    Raises:
        runner.ConfigError: a config value whose interpolation does not
            resolve (one line naming the key and the fix); checked first,
            whatever ``skip_done``.
    """
    from omegaconf import errors as omegaconf_errors  # pylint: disable=g-import-not-at-top

    from ntkexp import records  # pylint: disable=g-import-not-at-top
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    try:
        config_hash = records.config_hash(cfg)  # resolves every interpolation
    except omegaconf_errors.InterpolationResolutionError as error:
        key = getattr(error, 'full_key', None) or 'a config value'
        reason = str(error).splitlines()[0]  # omegaconf adds key / type lines
        raise runner.ConfigError(
            f'{key} does not resolve: {reason}. To fix: '
            f'set {key}=VALUE on the command line, or choose settings its '
            'interpolation knows (the config file that sets it lists them).'
        ) from None
    if not cfg.get('skip_done', True):
        return None
    finished = [d for d in records.finished_runs(Path(cfg.paths.runs), config_hash)
                if d.resolve() != run_dir.resolve()]
    if not finished:
        return None
    names = runner.base_columns(cfg)
    done = next((d for d in finished if not _names_differ(names, d)), None)
    if done is None:  # model=cnn_gap composes what model=cnn does
        log.info('the same config ran ok in %s, named otherwise there; running '
                 'it as %s', finished[0],
                 ' '.join(f'{k}={names.get(k)}' for k in _NAME_COLUMNS))
        return None
    print(f'ntkexp: skipped, this config already ran ok in {done} '
          '(pass skip_done=false to run it again)')
    runner.cleanup_failed_start(run_dir)
    return done


# Row columns that name a run's choices, not its config values.
_NAME_COLUMNS = ('model', 'dataset', 'setup')


def _names_differ(names: dict, done: Path) -> bool:
    """Whether ``done``, a run of the same config, names it otherwise in its
    rows than ``names`` (:func:`runner.base_columns`): ``model=cnn_gap``
    composes what ``model=cnn`` does, but its rows must say cnn_gap."""
    import json  # pylint: disable=g-import-not-at-top

    from ntkexp import records  # pylint: disable=g-import-not-at-top
    try:
        with open(done / records.ROWS_JSONL, encoding='utf-8') as rows:
            first = json.loads(rows.readline())
    except (OSError, ValueError):
        return False  # no rows to name anything
    return any(k in first and first[k] != names.get(k) for k in _NAME_COLUMNS)


def _sweep_job(cfg, hydra_cfg, run_dir: Path) -> str:
    """Runs one job of a sweep; never raises an ordinary exception.

    The job's outcome goes to its ``status.json`` (by :func:`runner.run_job`)
    and to a job record for the sweep summary (:mod:`ntkexp.sweep`); a failure
    is printed as one line and returned, so the launcher goes on with the
    other jobs. Ctrl-C or SIGTERM stops the sweep: the job is recorded as
    failed and ``SystemExit`` (130, 128 + the signal) ends the launcher.

    Returns:
        'ok', 'skipped' or 'failed'.
    """
    from ntkexp import interrupts  # pylint: disable=g-import-not-at-top
    from ntkexp import records  # pylint: disable=g-import-not-at-top
    from ntkexp import report  # pylint: disable=g-import-not-at-top
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    from ntkexp import sweep  # pylint: disable=g-import-not-at-top

    sweep_dir = Path(str(hydra_cfg.sweep.dir))
    num = int(hydra_cfg.job.num)
    base = {'overrides': list(hydra_cfg.overrides.task), 'run_dir': str(run_dir)}
    error_text = None
    try:
        done = _skip_if_done(cfg, run_dir)
        if done is not None:
            sweep.write_job_record(sweep_dir, num, {
                **base, 'run_dir': None, 'status': 'skipped',
                'same_as': str(done.resolve())})
            return 'skipped'
        sweep.write_job_record(sweep_dir, num, {**base, 'status': 'running',
                                                'pid': os.getpid(), 'host': socket.gethostname()})
        frame = runner.run_job(cfg, run_dir)
    except (KeyboardInterrupt, interrupts.Terminated) as error:
        # The sweep stops here; the summary of its jobs follows (_hydra_main).
        sweep.write_job_record(sweep_dir, num, {
            **base, 'status': 'failed', 'error': records.error_text(error)})
        _stopped(error, run_dir)
    except runner.ConfigError as error:
        # Nothing was written by run_job; record the failure for collect.
        error_text = f'ConfigError: {error}'
        run_dir.mkdir(parents=True, exist_ok=True)
        status = {'status': 'failed', 'error': error_text, 'wall_time_s': 0.0,
                  'rows': 0}
        try:
            status['config_hash'] = records.config_hash(cfg)
        except Exception:  # pylint: disable=broad-except
            pass
        records.write_json_atomic(run_dir / records.STATUS_JSON, status)
    except Exception as error:  # pylint: disable=broad-except
        error_text = (runner.out_of_memory_advice(error, cfg)
                      or records.error_text(error))
    if error_text is not None:
        print(f'ntkexp: error: {error_text}\n(status and rows so far: '
              f'{run_dir})', file=sys.stderr)
        sys.stderr.flush()
        sweep.write_job_record(sweep_dir, num, {
            **base, 'status': 'failed', 'error': error_text})
        return 'failed'
    print(report.summary_table(frame))
    print(f'run directory: {run_dir}')
    status = records.read_status(run_dir) or {}
    sweep.write_job_record(sweep_dir, num, {
        **base, 'status': 'ok', 'wall_time_s': status.get('wall_time_s')})
    return 'ok'



def _add_overrides(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` with ``extra`` overrides next to the user's own.

    Hydra's parser takes the overrides as one group of positional arguments
    (``ntkexp run a=1 -m b=2,3`` is an argparse error there), so the flags
    go first, in their order, then ``extra`` and the user's overrides.
    """
    flags = [a for i, a in enumerate(argv) if not _is_override(argv, i)]
    overrides = [a for i, a in enumerate(argv) if _is_override(argv, i)]
    return flags + extra + overrides


def _hydra_main(argv: list[str]) -> None:
    """Runs Hydra's main with ``argv`` (overrides and Hydra flags).

    A single run fails with a one-line error and a non-zero exit status. In a
    sweep (``-m``) every job runs whatever the others do; failed jobs are
    recorded, a summary of all jobs is printed at the end, and the exit status
    is 1 if any job failed (see :mod:`ntkexp.sweep`).
    """
    import hydra  # pylint: disable=g-import-not-at-top
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
    from hydra.types import RunMode  # pylint: disable=g-import-not-at-top
    from omegaconf import DictConfig  # pylint: disable=g-import-not-at-top

    import ntkexp  # noqa: F401  (makes neural-tangents importable)
    from ntkexp import interrupts  # pylint: disable=g-import-not-at-top
    from ntkexp import local_controllers  # pylint: disable=g-import-not-at-top
    from ntkexp import records  # pylint: disable=g-import-not-at-top
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    from ntkexp import report  # pylint: disable=g-import-not-at-top
    from ntkexp import sweep  # pylint: disable=g-import-not-at-top

    @hydra.main(config_path=str(CONF_DIR), config_name='config',
                version_base='1.3')
    def task(cfg: DictConfig) -> str | None:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        logging.getLogger('jax').setLevel(logging.WARNING)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return _sweep_job(cfg, hydra_cfg, run_dir)
        try:
            if _skip_if_done(cfg, run_dir) is not None:
                return 'skipped'
        except runner.ConfigError as error:
            runner.cleanup_failed_start(run_dir)
            _fail(str(error))
        try:
            frame = runner.run_job(cfg, run_dir)
        except runner.ConfigError as error:
            runner.cleanup_failed_start(run_dir)
            _fail(str(error))
        except (KeyboardInterrupt, interrupts.Terminated) as error:
            _stopped(error, run_dir)
        except Exception as error:  # pylint: disable=broad-except
            # Bad data or values (also inside Hydra's instantiate wrapper),
            # a budget too small, a device out of memory: one line; anything
            # else is a bug and keeps its traceback.
            advice = runner.out_of_memory_advice(error, cfg)
            shown = advice or records.unwrapped(error)
            if advice is None and not isinstance(
                    shown, (ValueError, FileNotFoundError, MemoryError)):
                raise
            print(f'ntkexp: error: {shown}\n(status and rows so far: '
                  f'{run_dir})', file=sys.stderr)
            raise SystemExit(1) from None
        print(report.summary_table(frame))
        print(f'run directory: {run_dir}')
        return 'ok'

    # The callback tells this process the sweep's directory and jobs; a job's
    # log is <run dir>/run.log (runner.cleanup_failed_start expects it).
    extra = ['++hydra.callbacks.ntkexp_sweep._target_=ntkexp.sweep.SweepCallback']
    if not any(a.startswith('hydra.job.name=') for a in argv):
        extra.append('hydra.job.name=run')
    sys.argv = ['ntkexp run'] + _add_overrides(argv, extra)
    sweep.reset()
    code = 0
    try:
        with contextlib.ExitStack() as stack:
            if _is_sweep(argv):
                # SIGTERM, like Ctrl-C, reaches this process inside the
                # launcher too (a single run's jobs handle it themselves);
                # slurm_local's controllers log to <sweep>/.submitit/.
                stack.enter_context(interrupts.sigterm_raises())
                stack.enter_context(local_controllers.quiet())
            task()  # pylint: disable=no-value-for-parameter
    except SystemExit as exit_:
        if not sweep.current():
            raise
        # The launcher itself failed (e.g. a submitit job was killed).
        code = exit_.code if isinstance(exit_.code, int) else 1
    except (KeyboardInterrupt, interrupts.Terminated) as error:
        if not sweep.current():
            raise
        # Ctrl-C / SIGTERM reached this process inside the launcher (joblib's
        # or submitit's wait): record the jobs it stopped, then the summary.
        sweep.record_interrupted(error)
        print(f'ntkexp: stopped: {records.error_text(error)}', file=sys.stderr)
        code = interrupts.exit_code(error)
    if sweep.current():
        failed = sweep.report()  # also when the launcher or a signal stopped it
        code = code or failed
        sweep.reset()
    if code:
        raise SystemExit(code)


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
    plot.add_argument('tables', nargs='+', type=Path,
                      help='tables from `ntkexp collect`, or run directories '
                      '(collected on the fly)')
    plot.add_argument('-o', '--out', type=Path, default=Path('results/figures'))

    if argv and argv[0] == 'run':
        overrides = argv[1:]
        if overrides and overrides[0] in ('-h', '--help') and len(overrides) == 1:
            print('\n\n'.join(__doc__.split('\n\n')[:2]) + '\n')
            print('Config groups (group=choice):')
            for group in GROUPS:
                print(f"  {group}: {', '.join(available(group))}")
            print(f"  hydra/launcher (sweeps, -m): {', '.join(launchers())}")
            print('\nThe keys of a config and their values: ntkexp run '
                  'experiment=alignment model=wrn --cfg job\n'
                  'Each experiment config starts with its command, runtime and '
                  'expected result: conf/experiment/<name>.yaml\n'
                  'Hydra help: ntkexp run --hydra-help')
            return
        check_override_syntax(overrides)
        check_inspection_flags(overrides)
        check_group_overrides(overrides)
        check_slurm_available(overrides)
        check_key_overrides(overrides)
        check_paths_writable(overrides)
        _hydra_main(overrides)
        return

    args = parser.parse_args(argv)
    if args.command == 'collect':
        from ntkexp import collect as collect_mod  # pylint: disable=g-import-not-at-top
        collect_mod.main(args.dirs, args.out)
    elif args.command == 'plot':
        from ntkexp import plot as plot_mod  # pylint: disable=g-import-not-at-top
        plot_mod.main(args.tables, args.out)


if __name__ == '__main__':
    main()
