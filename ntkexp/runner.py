"""Run one composed config: validate it, set precision, call the experiment.

The command line (:mod:`ntkexp.cli`) is a thin Hydra wrapper around
:func:`run_job`; tests call :func:`run_job` directly with a config composed by
Hydra's compose API.

An experiment is a function ``run(cfg, run_dir, rows) -> pandas.DataFrame | None``
named by ``cfg.experiment.run``; it writes its measurements with
``rows.add(metric, value, **params)`` and may return a small summary table to
print.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import math
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from ntkexp import interrupts, records
from ntkexp.cli import CONF_DIR
from ntkexp.data import builders, preprocess
from ntkexp.experiments.options import as_list, time_value

log = logging.getLogger(__name__)

# Model hyper-parameters copied onto every row (when the model has them).
_MODEL_COLUMNS = ('width', 'depth', 'k', 'filter_size', 'readout', 'alpha',
                  'alpha_gamma', 'normalize', 'V_std', 'layout', 'block_style',
                  'W_std', 'b_std', 'activation', 'parameterization')
# Dataset options copied onto every row (the synthetic sets' d, target, noise,
# scale and grid too); the subset seed as column 'dataset.seed', beside the
# init seed.
_DATASET_COLUMNS = ('n_train', 'n_test', 'n_valid', 'classes', 'zca', 'standardize',
                    'stats_from', 'targets', 'd', 'target', 'noise', 'scale', 'grid')


class ConfigError(ValueError):
    """An invalid config value; the message names the problem and the fix."""


def target_name(node: DictConfig | None) -> str:
    """Short name of a config node: its ``name`` key or its ``_target_``'s."""
    if node is None:
        return 'none'
    name = node.get('name', None)
    if name:
        return str(name)
    target = node.get('_target_', None)
    return str(target).rsplit('.', 1)[-1] if target else 'none'


def choice_name(group: str, node: DictConfig | None) -> str:
    """The config-group choice (``model=cnn_vec`` -> 'cnn_vec') of a run.

    Read from Hydra's runtime when the run was launched by Hydra, else from the
    node (:func:`target_name`), e.g. for configs built with the compose API.
    """
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return target_name(node)


def _hydra_ready() -> bool:
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
    return HydraConfig.initialized()


def base_columns(cfg: DictConfig) -> dict[str, Any]:
    """Columns shared by every row of a run (DESIGN.md: long-format rows)."""
    base = {
        'experiment': str(cfg.experiment.name),
        'model': choice_name('model', cfg.get('model')),
        'dataset': choice_name('dataset', cfg.get('dataset')),
        'seed': int(cfg.get('seed', 0)),
        # The experiment config chosen (a paper figure such as lee2020_cifar10).
        'setup': choice_name('experiment', None) if _hydra_ready() else
                 str(cfg.experiment.name),
    }
    # Resolved: a row says 3, not '${model.depth}' (config.yaml is resolved too).
    model = (OmegaConf.to_container(cfg.model, resolve=True)
             if cfg.get('model') is not None else {})
    base.update({key: model[key] for key in _MODEL_COLUMNS if key in model})
    if base.get('alpha_gamma') is not None:
        # The ResNet's alpha = depth^(-alpha_gamma) (Huang et al. 2020), not
        # model.alpha: the row says so by alpha_gamma, with alpha left empty.
        base['alpha'] = None
    if base.get('layout') == 'flat':  # a flat ResNet has no filters to read out
        base['filter_size'] = base['readout'] = None
    dataset = (OmegaConf.to_container(cfg.dataset, resolve=True)
               if cfg.get('dataset') is not None else {})
    for key in _DATASET_COLUMNS:
        if key in dataset:
            value = dataset[key]
            # A list as its JSON text ([4, 9]), as collect stores swept lists.
            base[key] = json.dumps(value) if isinstance(value, list) else value
    if 'seed' in dataset:
        base[records.DATA_SEED_COLUMN] = dataset['seed']
    base['precision'] = str(cfg.get('precision', 'float32'))
    base['matmul_precision'] = str(cfg.get('matmul_precision', 'highest'))
    return base


def base_column_sources() -> dict[str, str]:
    """The config key behind each value column of :func:`base_columns`
    (``seed`` is the root ``seed``, not ``dataset.seed``; ``width`` is
    ``model.width``, ``n_train`` is ``dataset.n_train``, ...)."""
    return {'seed': 'seed', **{k: f'model.{k}' for k in _MODEL_COLUMNS},
            **{k: f'dataset.{k}' for k in _DATASET_COLUMNS},
            records.DATA_SEED_COLUMN: 'dataset.seed'}


def require(condition: bool, message: str) -> None:
    """Raises :class:`ConfigError` with ``message`` unless ``condition``
    holds (the experiments' ``validate`` hooks check their options with it)."""
    if not condition:
        raise ConfigError(message)


def require_scalar_not_beside_list(cfg: DictConfig, given: set[str], scalar: str,
                                   listed: str, verb: str) -> None:
    """Refuses ``scalar`` (e.g. ``seed``) typed while the experiment runs the
    list ``listed`` (``experiment.seeds``) instead, which would ignore it (a
    sweep over it would repeat one run); ``verb`` says what the experiment
    does with the list (``trains``, ``computes``)."""
    values = as_list(OmegaConf.select(cfg, listed, default=None), None)
    if scalar in given and values is not None:
        value = OmegaConf.select(cfg, scalar, default=None)
        raise ConfigError(
            f'{scalar}={value} would be ignored: experiment={cfg.experiment.name} '
            f'{verb} {listed}={list(values)}; give {listed}=[{value}] instead, or '
            f'add {listed}=null to use {scalar}')


def _number(value: Any) -> float | None:
    """``value`` as a finite float (numbers, or strings such as ``'1e-4'``
    that YAML leaves unparsed); None for anything else (``'abc'``, bools)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    """``value`` as an int (also ``'64'``); None for anything else."""
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


def _function(path: Any, key: str) -> Callable[..., Any]:
    """The function ``path`` (``module.function``) names, or one line saying
    why it cannot be imported."""
    require(isinstance(path, str) and '.' in path,
            f'{key}={path!r} must name a function as module.function (e.g. '
            'ntkexp.experiments.kernel_regression.run)')
    try:
        function = _locate(path)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f'{key}={path!r} cannot be imported ({type(error).__name__}: '
            f"{error}); check the name, and put the folder holding "
            f"'{path.split('.')[0]}' on PYTHONPATH (e.g. PYTHONPATH=. ntkexp "
            'run ...)') from None
    require(callable(function), f'{key}={path!r} is not a function')
    return function


def _locate(path: str) -> Any:
    """The object ``a.b.c`` names: the longest importable module prefix, then
    attributes (what Hydra's ``get_method`` does, without its error log)."""
    parts = path.split('.')
    for i in range(len(parts) - 1, 0, -1):
        name = '.'.join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as error:
            # Only a missing prefix of ``path`` means "try a shorter one"; a
            # module that is there but lacks a dependency is its own error.
            if error.name and (name == error.name
                               or name.startswith(error.name + '.')):
                continue
            raise
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(f"No module named '{parts[0]}'")


def command_line_keys() -> set[str]:
    """The config keys this job got on the command line (Hydra's task
    overrides, e.g. ``{'seed', 'model.width'}``; sweeps give each job its
    values). Empty outside a Hydra job (the compose API, tests)."""
    from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
    if not HydraConfig.initialized():
        return set()
    keys = set()
    for override in HydraConfig.get().overrides.task:
        key = str(override).split('=', 1)[0].lstrip('+~')
        keys.add(key)
    return keys


def validate(cfg: DictConfig) -> None:
    """Checks values that would otherwise fail deep inside a run.

    Architectures validate their own hyper-parameters when built; this checks
    the root and experiment options, then builds the model once.

    Raises:
        ConfigError: with one line naming the problem and the valid values.
    """
    _check_root_options(cfg)
    _check_kernel_options(cfg.get('kernel', {}))
    _check_dataset_options(cfg)
    _check_shared_experiment_options(cfg.experiment)
    _check_options_set_aside(cfg, command_line_keys())
    _function(cfg.experiment.get('run', None), 'experiment.run')
    validator = cfg.experiment.get('validate', None)
    if validator:
        _function(validator, 'experiment.validate')(cfg)
    _check_model_takes_the_data(cfg)
    _check_model_builds(cfg)
    _check_width_used(cfg, command_line_keys())
    _check_kernel_jobs_used(cfg, command_line_keys())


def _check_root_options(cfg: DictConfig) -> None:
    """``matmul_precision``, ``precision`` and the seeds."""
    require(cfg.get('matmul_precision', 'highest') in MATMUL_PRECISIONS,
            f"matmul_precision={cfg.get('matmul_precision')!r} is invalid; use "
            + ' or '.join(f'matmul_precision={p}' for p in MATMUL_PRECISIONS))
    require(cfg.get('precision') in ('float32', 'float64'),
            f"precision={cfg.get('precision')!r} is invalid; use precision=float32 "
            'or precision=float64')
    for key, value in (('seed', cfg.get('seed', 0)),
                       ('dataset.seed', (cfg.get('dataset') or {}).get('seed', 0))):
        require(_integer(value) is not None,
                f'{key}={value!r} must be an integer (e.g. {key}=0; a sweep: '
                f'{key}=0,1,2)')


def _check_kernel_options(kernel: DictConfig | dict) -> None:
    """The ``kernel`` group: memory budget, block size and time cap, jobs."""
    memory = kernel.get('memory_gb', 1)
    require((_number(memory) or 0) > 0,
            f'kernel.memory_gb={memory!r} must be a number > 0 (GiB)')
    seconds = kernel.get('block_seconds', None)
    require(seconds is None or (_number(seconds) or 0) > 0,
            f'kernel.block_seconds={seconds!r} must be a number > 0 or null (no time cap)')
    bs = kernel.get('block_size', None)
    require(bs is None or (_integer(bs) or 0) > 0,
            f'kernel.block_size={bs!r} must be a positive integer or null')
    jobs = kernel.get('jobs', 1)
    require((_integer(jobs) or 0) >= 1,
            f'kernel.jobs={jobs!r} must be an integer >= 1')
    require(kernel.get('executor', 'local') in ('local', 'slurm'),
            f"kernel.executor={kernel.get('executor')!r} is invalid; use local "
            'or slurm')
    if (_integer(jobs) or 0) > 1 and kernel.get('executor') == 'slurm':
        require(shutil.which('sbatch') is not None,
                f'kernel.executor=slurm submits the kernel.jobs={jobs} block jobs '
                "to SLURM, but sbatch is not on this machine's PATH: run on the "
                "cluster's login node, or use kernel.executor=local to run the "
                'jobs here')


def _check_dataset_options(cfg: DictConfig) -> None:
    """The split sizes; ``dataset.n_valid`` only where a run scores it."""
    dataset = cfg.get('dataset') or {}
    for key in ('n_train', 'n_test'):  # the builders check the rest
        if key in dataset:
            try:
                preprocess.check_size(dataset[key], f'dataset.{key}')
            except ValueError as error:
                raise ConfigError(str(error)) from None
    n_valid = dataset.get('n_valid', 0)
    try:
        builders.check_n_valid(n_valid)
    except ValueError:
        raise ConfigError(f'dataset.n_valid={n_valid!r} must be an integer >= 0 '
                          '(0 = no validation split)') from None
    _check_dataset_takes_its_options(cfg)
    run = cfg.experiment.get('run', None)
    require(not n_valid or run in VALIDATION_RUNS,
            f'dataset.n_valid={n_valid}: only experiment=kernel_regression (and the paper '
            f'configs that run it) scores a validation split; experiment.run='
            f'{run} would ignore it: drop dataset.n_valid')


def _check_dataset_takes_its_options(cfg: DictConfig) -> None:
    """An option an experiment file sets that the dataset's builder does not
    take (``dataset.targets`` on a synthetic set, whose targets are its own)
    is one line here, not Hydra's error from inside the run. A typed unknown
    key never gets this far (the command line's key check)."""
    dataset = cfg.get('dataset') or {}
    target = dataset.get('_target_', None)
    if not isinstance(target, str) or cfg.experiment.get('run') in OWN_INPUT_RUNS:
        return  # (those experiments refuse a typed dataset themselves)
    try:
        builder = _locate(target)
        parameters = inspect.signature(builder).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return  # _check_model_builds-like errors come from instantiate
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    name = choice_name('dataset', dataset)
    for key in dataset:
        if key == '_target_' or key in parameters:
            continue
        source = ('typed' if f'dataset.{key}' in command_line_keys() else
                  f'set by experiment={choice_name("experiment", cfg.experiment)}')
        having = sorted(p.stem for p in (CONF_DIR / 'dataset').glob('*.yaml')
                        if re.search(rf'^{re.escape(str(key))}:', p.read_text(), re.M))
        use = ('use a dataset that has it (' + ', '.join(f'dataset={h}' for h in having)
               + ') or ' if having else '')
        drop = ('drop it from the command line' if source == 'typed' else
                f"drop it with '~dataset.{key}'")
        raise ConfigError(
            f'dataset={name} has no option {key} ({source}: dataset.{key}='
            f'{OmegaConf.select(cfg, f"dataset.{key}")}); {use}{drop}')


def _check_shared_experiment_options(exp: DictConfig) -> None:
    """Options several experiments share: ``diag_reg``, ``kernels``, ``t``."""
    for key in ('diag_reg',):
        if key in exp:
            for value in as_list(exp[key], if_none=[None]):
                require(_number(value) is not None and _number(value) >= 0,
                        f'experiment.{key}={value!r} is invalid; the diagonal '
                        'regulariser must be a number >= 0 (e.g. '
                        'experiment.diag_reg=1e-4)')
    if 'kernels' in exp:  # the infinite-width kernels an experiment computes
        kernels = as_list(exp.kernels)
        unknown = [k for k in kernels if k not in ('nngp', 'ntk')]
        require(kernels and not unknown,
                f'experiment.kernels={list(kernels)} is invalid; give nngp and/or '
                'ntk, e.g. experiment.kernels=[nngp,ntk]')
    for value in as_list(exp.get('t', None)):  # kernel regression's training times
        try:
            ok = time_value(value) >= 0
        except ValueError:
            ok = False
        require(ok, f'experiment.t={value} is invalid; a training time is a '
                    'number >= 0, inf or null (the converged predictor), e.g. '
                    'experiment.t=[10,100,null]')


def _check_options_set_aside(cfg: DictConfig, given: set[str]) -> None:
    """Refuses an option typed on the command line that an option from a
    config file sets aside, so that the run would not use it.

    ``experiment.lr`` is used only with ``experiment.lr_fraction=null`` (the
    fraction sets the rate from the NTK's stability bound,
    ``nt.predict.max_learning_rate``) and ``experiment.lr_kernel`` only with
    a fraction;
    ``experiment.momentum`` only with ``experiment.optimizer=momentum``; the
    step decay's ``decay_at`` / ``decay_factor`` only with
    ``experiment.schedule=step``, ``final_lr_fraction`` only with ``cosine``;
    ``dataset.stats_from`` only with ``dataset.standardize`` or
    ``dataset.zca``; the ResNet's ``model.alpha`` only with
    ``model.alpha_gamma=null``, its ``filter_size`` / ``readout`` only with
    ``model.layout=image``; ``kernel.executor=slurm`` and ``kernel.slurm.*`` only
    with ``kernel.jobs`` > 1 (docs/cluster.md); finite_width's ``l2_center``
    only with ``l2``, ``slice_steps`` with a ``slice``, ``percentiles`` with
    ``functions``, ``kernel_diag_reg`` with ``kernel_inf``; kernel regression's
    ``augment.*`` only with augmented members (or ``union``). When both
    options are typed (a sweep over a grid) the combination is the user's and
    runs.
    """
    exp = cfg.experiment
    dataset = cfg.get('dataset') or {}
    fraction = exp.get('lr_fraction', None)
    optimizer = exp.get('optimizer', None)
    schedule = exp.get('schedule', None)
    kernel = cfg.get('kernel') or {}
    jobs = _integer(kernel.get('jobs', 1)) or 1
    model = cfg.get('model') or {}
    flat = (model.get('layout', None) == 'flat', ('model.layout',),
            'model.layout=flat has no convolutions and reads its vector out '
            'directly; add model.layout=image')
    decay = (schedule not in (None, 'step'),
             ('experiment.schedule',), f'experiment.schedule={schedule} does '
             'not decay in steps; add experiment.schedule=step')
    augment = exp.get('augment', None) or {}
    unaugmented = (not augment.get('members', 0) and not augment.get('union', False),
                   ('experiment.augment.members', 'experiment.augment.union'),
                   'experiment.augment.members=0 trains no augmented predictor; add '
                   'experiment.augment.members=N (or experiment.augment.union=true)')
    set_aside = {  # option: (set aside?, by which options, why and the fix)
        'experiment.lr': (
            fraction is not None, ('experiment.lr_fraction',),
            f'experiment.lr_fraction={fraction} sets the learning rate to that '
            'fraction of the largest stable one (nt.predict.max_learning_rate of '
            'the NTK); add experiment.lr_fraction=null to use experiment.lr'),
        'experiment.lr_kernel': (
            'lr_fraction' in exp and fraction is None, ('experiment.lr_fraction',),
            f"experiment.lr_fraction=null uses experiment.lr={exp.get('lr', None)}; "
            'set experiment.lr_fraction (e.g. 0.5) to scale the stability bound of '
            'that kernel'),
        'experiment.momentum': (
            optimizer not in (None, 'momentum'), ('experiment.optimizer',),
            f'experiment.optimizer={optimizer} has no momentum; add '
            'experiment.optimizer=momentum'),
        'experiment.decay_at': decay,
        'experiment.decay_factor': decay,
        'experiment.l2_center': (
            not exp.get('l2', 0), ('experiment.l2',),
            f"experiment.l2={exp.get('l2', 0)} adds no L2 term to centre; add "
            'experiment.l2=1e-3'),
        'experiment.slice_steps': (
            exp.get('slice', None) is None, ('experiment.slice',),
            'experiment.slice=null draws no NTK slice; add '
            "'experiment.slice={x0: [1.0, 0.0], points: 100}'"),
        'experiment.percentiles': (
            not exp.get('functions', False), ('experiment.functions',),
            'experiment.functions=false draws no infinite-width Gaussian to take '
            'percentiles of; add experiment.functions=true'),
        'experiment.kernel_diag_reg': (
            not exp.get('kernel_inf', False), ('experiment.kernel_inf',),
            'experiment.kernel_inf=false solves no kernel regression at t = inf; '
            'add experiment.kernel_inf=true'),
        'experiment.augment.flip': unaugmented,
        'experiment.augment.crop': unaugmented,
        'experiment.augment.seed': unaugmented,
        'experiment.final_lr_fraction': (
            schedule not in (None, 'cosine'), ('experiment.schedule',),
            f'experiment.schedule={schedule} is not cosine; add '
            'experiment.schedule=cosine'),
        'model.alpha': (
            model.get('alpha_gamma', None) is not None, ('model.alpha_gamma',),
            f"model.alpha_gamma={model.get('alpha_gamma', None)} sets alpha = "
            f"depth^-{model.get('alpha_gamma', None)} at every depth; add "
            'model.alpha_gamma=null to use model.alpha'),
        'model.filter_size': flat,
        'model.readout': flat,
        'kernel.executor': (
            kernel.get('executor', 'local') == 'slurm' and jobs <= 1, ('kernel.jobs',),
            'kernel.jobs=1 computes the kernel in this job; add kernel.jobs=N to '
            'split its blocks into N SLURM jobs'),
        'dataset.stats_from': (
            not dataset.get('standardize', None) and not dataset.get('zca', None),
            ('dataset.standardize', 'dataset.zca'),
            'it says where dataset.standardize / dataset.zca take their statistics '
            'from, and neither is set; add e.g. dataset.standardize=per_channel'),
    }
    for key, (aside, by, reason) in set_aside.items():
        require(key not in given or not aside or any(k in given for k in by),
                f'{key}={OmegaConf.select(cfg, key)} would be ignored: {reason}')
    slurm = sorted(k for k in given if k.startswith('kernel.slurm.'))
    if slurm and not {'kernel.jobs', 'kernel.executor'} & given:
        require(jobs > 1 and kernel.get('executor', 'local') == 'slurm',
                f'{slurm[0]}={OmegaConf.select(cfg, slurm[0])} would be ignored: '
                "kernel.slurm sets the SLURM jobs of one kernel's blocks, which run "
                "with kernel.jobs=N kernel.executor=slurm (a sweep's jobs take "
                'hydra/launcher=slurm and hydra.launcher.*)')


# Experiments that compute only infinite-width kernels (no finite network).
KERNEL_ONLY_RUNS = ('ntkexp.experiments.kernel_regression.run',
                    'ntkexp.experiments.kernel_precision.run',
                    'ntkexp.experiments.alignment.run_sphere')


def _check_width_used(cfg: DictConfig, given: set[str]) -> None:
    """A typed ``model.width`` (or WRN's widening ``model.k``) in an
    experiment of infinite-width kernels alone, in the NTK parameterisation,
    whose kernels do not depend on it: a sweep over it repeated one result
    under several widths. The standard parameterisation's kernels do depend on
    the width (Sohl-Dickstein et al. 2020); a typed parameterisation is the
    user's grid."""
    model = cfg.get('model') or {}
    if (cfg.experiment.get('run') not in KERNEL_ONLY_RUNS
            or model.get('parameterization', 'ntk') != 'ntk'
            or 'model.parameterization' in given):
        return
    for key in ('width', 'k'):
        require(f'model.{key}' not in given or key not in model,
                f'model.{key}={model.get(key)} would be ignored: experiment='
                f'{cfg.experiment.name} computes infinite-width kernels, which in the '
                'NTK parameterisation do not depend on the width; drop it (the '
                'kernels of model.parameterization=standard do depend on it)')


# Experiments whose kernels kernel.jobs > 1 splits into submitit jobs
# (kernel_regression.compute_kernels); the others compute them in this process.
KERNEL_JOBS_RUNS = ('ntkexp.experiments.kernel_regression.run',
                    'ntkexp.experiments.kernel_precision.run',
                    'ntkexp.experiments.finite_width.run')


def _check_kernel_jobs_used(cfg: DictConfig, given: set[str]) -> None:
    """A typed ``kernel.jobs`` > 1 in an experiment that never splits its
    kernels into jobs (alignment, nads, ...) is refused, not ignored."""
    jobs = _integer((cfg.get('kernel') or {}).get('jobs', 1)) or 1
    run = cfg.experiment.get('run')
    require('kernel.jobs' not in given or jobs <= 1 or run in KERNEL_JOBS_RUNS
            or not str(run).startswith('ntkexp.'),
            f'kernel.jobs={jobs} would be ignored: experiment={cfg.experiment.name} '
            'computes its kernels in this process; kernel.jobs splits the kernels of '
            'kernel_regression, kernel_precision and finite_width (ntk_drift, nth) '
            'runs; drop it')


# Experiments that generate their own inputs instead of reading cfg.dataset.
OWN_INPUT_RUNS = ('ntkexp.experiments.nads.run', 'ntkexp.experiments.alignment.run_sphere')
# Datasets of vectors (N, d) (the rest give images unless dataset.flatten).
VECTOR_DATASETS = ('circle', 'sphere', 'gaussian')


def _check_model_takes_the_data(cfg: DictConfig) -> None:
    """A convolutional model on vectors fails before the run starts (it
    used to fail at the first kernel block, naming a probe's shape)."""
    dataset, model = cfg.get('dataset'), cfg.get('model')
    if dataset is None or model is None or cfg.experiment.get('run') in OWN_INPUT_RUNS:
        return
    from ntkexp.models import inputs  # pylint: disable=g-import-not-at-top
    try:
        layout = inputs.input_layout(model)
    except ValueError:
        return  # not one of ntkexp's architectures: its own checks apply
    builder = str(dataset.get('_target_', '')).rsplit('.', 1)[-1]
    name = choice_name('dataset', dataset)
    gives = ('vectors' if builder in VECTOR_DATASETS else
             'flattened images (dataset.flatten=true)' if dataset.get('flatten', False)
             else 'images')
    require(layout != 'image' or gives == 'images',
            f"model={choice_name('model', model)} needs image inputs (N, H, W, C), "
            f'and dataset={name} gives {gives}; '
            + ('add dataset.flatten=false, or ' if gives != 'vectors' else
               'use an image dataset (dataset=digits, mnist, cifar10, ...) or ')
            + 'use model=fc or model=resnet (layout=flat)')


def _check_model_builds(cfg: DictConfig) -> None:
    """Builds the model once, so that a bad hyper-parameter is one line, and
    logs what will compute its infinite-width kernels (run.log says so)."""
    if cfg.get('model') is not None:
        from hydra.utils import instantiate  # pylint: disable=g-import-not-at-top

        from ntkexp import kernels  # pylint: disable=g-import-not-at-top
        try:
            _, _, kernel_fn = instantiate(cfg.model)
        except Exception as error:  # Hydra wraps the model's ValueError.
            cause = records.unwrapped(error)
            if isinstance(cause, ValueError):
                raise ConfigError(f'model: {cause}') from None
            raise
        log.info('model=%s: infinite-width kernels by %s (model.fast_kernel=%s)',
                 choice_name('model', cfg.model), kernels.implementation(kernel_fn),
                 cfg.model.get('fast_kernel', 'false'))


MATMUL_PRECISIONS = ('highest', 'high', 'default')
#: The experiments that score ``dataset.n_valid``'s validation split.
VALIDATION_RUNS = ('ntkexp.experiments.kernel_regression.run',)


def set_precision(cfg: DictConfig) -> None:
    """Enables float64 in JAX when ``precision=float64``; sets matmul precision.

    ``matmul_precision`` (default ``highest``) is JAX's
    ``jax_default_matmul_precision``: on GPUs the ``default`` lets float32
    products run in TF32, whose 1e-3 relative error shows in kernels.
    """
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update('jax_enable_x64', cfg.get('precision') == 'float64')
    jax.config.update('jax_default_matmul_precision',
                      cfg.get('matmul_precision', 'highest'))


def run_job(cfg: DictConfig, run_dir: Path | str) -> pd.DataFrame:
    """Runs one job, writing its config, status and rows into ``run_dir``.

    Args:
        cfg: the composed config (model, dataset, experiment, paths, ...).
        run_dir: the run directory (created if needed).

    Returns:
        The run's rows as a long-format DataFrame (also on disk).

    Raises:
        ConfigError: an invalid value; nothing is written.
        Exception: whatever the experiment raised; status.json says failed and
          the rows measured so far are kept (also for Ctrl-C's
          ``KeyboardInterrupt`` and SIGTERM's :class:`interrupts.Terminated`).
    """
    validate(cfg)
    import jax  # pylint: disable=g-import-not-at-top
    x64_before = bool(jax.config.jax_enable_x64)
    matmul_before = jax.config.jax_default_matmul_precision
    try:
        return _run_job(cfg, Path(run_dir))
    finally:
        # A run sets JAX's precision for itself only (tests run many jobs).
        jax.config.update('jax_enable_x64', x64_before)
        jax.config.update('jax_default_matmul_precision', matmul_before)


def _run_job(cfg: DictConfig, run_dir: Path) -> pd.DataFrame:
    """:func:`run_job` after validation, with the run's precision set."""
    # Before anything is written: an error here leaves no run directory, not
    # one whose status says running.
    base = base_columns(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    set_precision(cfg)
    (run_dir / records.CONFIG_YAML).write_text(
        OmegaConf.to_yaml(cfg, resolve=True))
    experiment: Callable[..., Any] = get_method(cfg.experiment.run)
    error: BaseException | None = None
    summary = None
    with interrupts.sigterm_raises():
        status = records.StatusRecord(run_dir, cfg)
        rows = records.RowWriter(run_dir / records.ROWS_JSONL, base)
        try:
            summary = experiment(cfg, run_dir, rows)
        except BaseException as exc:  # Ctrl-C and SIGTERM too: record them.
            error = exc
            raise
        finally:
            rows.close()
            try:
                frame = records.write_tables(run_dir)
            except Exception as table_error:  # rows.jsonl keeps every row
                # Recorded, not left 'running'; the experiment's own error
                # (if any) stays the one raised.
                message = (f'writing rows.csv / rows.parquet failed: {table_error} '
                           f'(every row is in {records.ROWS_JSONL})')
                if error is not None:
                    message = f'{records.error_text(error)}; then {message}'
                status.finish(error or table_error, rows=rows.count, message=message)
                if error is None:
                    raise
            else:
                status.finish(error, rows=rows.count, message=(
                    None if error is None else out_of_memory_advice(error, cfg)))
    if summary is not None:
        frame.attrs['summary'] = summary
    return frame


def out_of_memory_advice(error: BaseException, cfg: DictConfig) -> str | None:
    """One line for a device that ran out of memory (XLA's
    ``RESOURCE_EXHAUSTED``): XLA's first line and the settings of this run
    that lower what it needs. None for any other error."""
    text = str(records.unwrapped(error)).strip()
    if 'RESOURCE_EXHAUSTED' not in text:
        return None
    first = text.splitlines()[0]
    knobs = []
    kernel = cfg.get('kernel') or {}
    exp = cfg.get('experiment') or {}
    # experiment.ntk_block_size=auto sizes the empirical NTK's blocks from
    # kernel.memory_gb too.
    auto_blocks = exp.get('ntk_block_size', None) == 'auto'
    if 'memory_gb' in kernel:
        knobs.append(f"kernel.memory_gb (now {kernel['memory_gb']}) for "
                     + ('infinite-width and empirical NTK blocks' if auto_blocks
                        else 'infinite-width kernel blocks'))
    for key, what in (('ntk_block_size', 'empirical NTK blocks'),
                      ('batch_size', 'training mini-batches')):
        if key in exp and not (key == 'ntk_block_size' and auto_blocks):
            knobs.append(f'experiment.{key} (now {exp[key]}) for {what}')
    dataset = cfg.get('dataset') or {}
    if 'n_train' in dataset:
        knobs.append(f"dataset.n_train (now {dataset['n_train']})")
    listed = (', '.join(knobs[:-1]) + ' or ' + knobs[-1]) if len(knobs) > 1 else ''.join(knobs)
    return (f'out of device memory ({first}). Lower ' + listed +
            '. On a GPU JAX takes 75% of the memory at start '
            '(XLA_PYTHON_CLIENT_MEM_FRACTION); other processes on it count too.')


def cleanup_failed_start(run_dir: Path) -> None:
    """Removes a run directory Hydra created for a run that never started."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    leftovers = {p.name for p in run_dir.iterdir()}
    if leftovers <= {'.hydra', 'run.log', records.CONFIG_YAML}:
        shutil.rmtree(run_dir, ignore_errors=True)
