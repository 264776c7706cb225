"""One kernel past one machine: kernel blocks as submitit jobs sharing the cache.

The expensive object of Arora et al. 2019 (CNTK on full CIFAR-10) and Lee et
al. 2020 (NNGP / NTK of conv nets on CIFAR-10) is one large kernel. The block
engine (:mod:`ntkexp.kernels`) cuts it into blocks and caches each finished
block on disk; this module spreads the blocks still missing over
``kernel.jobs`` submitit jobs (DESIGN.md, "Past one machine, use existing
engines"):

* ``kernel.executor=local``: submitit's local executor, one process per job on
  this machine; ``kernel.executor=slurm``: a SLURM job array, with
  ``kernel.slurm.{partition, gpus_per_node, timeout_min, mem_gb, account,
  additional_parameters}``; any other key of ``kernel.slurm`` is passed to
  submitit (a generic one such as ``cpus_per_task`` as is, others as
  ``slurm_<key>``, e.g. ``+kernel.slurm.qos=high``, ``+kernel.slurm.setup=[...]``).
* **Split.** The train-train kernel (upper triangle only, by symmetry) and the
  test-train kernel are planned in this process (block size included); their
  missing blocks are cut into ``jobs`` contiguous groups, one job per group,
  so two jobs never write the same block. Each job rebuilds ``kernel_fn`` from
  the model config (:class:`ModelKernel`), reads the inputs saved once in the
  cache (``<cache>/kernels/_inputs/<sha256>.npy``), sets ``jax_enable_x64`` and
  ``jax_default_matmul_precision`` as this process has them, and writes its
  blocks atomically into the shared cache.
* **Wait.** This process shows blocks done / total with an ETA (counted in the
  cache), then assembles both kernels from the cache, exactly as in one
  process. The same jitted program computes every block at the same block size,
  so the kernel is the same bit for bit whatever the number of jobs (on the same
  kind of device).
* **Faults.** A job is :class:`submitit.helpers.Checkpointable`: timed out or
  preempted, it is requeued by submitit and skips the blocks already on disk.
  A job that raises stops the run at once (the other jobs are cancelled) with
  its error and log paths; a job that dies without a result (killed, out of
  memory) stops the run once the other jobs have finished. Either way every
  block written stays, and re-running the same command submits only the
  blocks still missing.

Job logs are submitit's, under ``<run_dir>/kernel_jobs/``.

Test hook: the environment variable ``NTKEXP_KERNEL_JOB_FAULT="<job>:<blocks>:
<kill|raise|preempt>"`` makes job number ``<job>`` (0-based), after writing
``<blocks>`` blocks, SIGKILL itself, raise an error, or send itself the
preemption signal (once). It is read in the jobs only; tests use it to check the
behaviour above.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import submitit
from omegaconf import DictConfig, OmegaConf

from ntkexp import kernels
from ntkexp import local_controllers

log = logging.getLogger(__name__)

JOB_LOG_DIR = 'kernel_jobs'
INPUTS_DIR = '_inputs'
FAULT_ENV = 'NTKEXP_KERNEL_JOB_FAULT'
_BLOCK_FILE = re.compile(r'^\d+_\d+\.npz$')
# Generic AutoExecutor parameters (passed without the ``slurm_`` prefix).
_GENERIC = ('name', 'timeout_min', 'mem_gb', 'nodes', 'cpus_per_task',
            'gpus_per_node', 'tasks_per_node', 'stderr_to_stdout')
_SLURM_RENAMED = {'partition': 'slurm_partition', 'account': 'slurm_account',
                  'additional_parameters': 'slurm_additional_parameters'}

Block = tuple[int, int, int]  # (part, i, j): kernel number and block indices


class KernelJobError(RuntimeError):
    """A kernel job failed or died; the blocks already written stay cached."""


@dataclasses.dataclass(frozen=True)
class KernelPart:
    """One kernel of the run as a job needs it (picklable).

    Attributes:
        name: ``'train x train'`` or ``'test x train'``.
        root: the block directory ``<cache>/<key>/b<block>``.
        x1: the saved row inputs (``.npy``).
        x2: the saved column inputs, or ``None`` for a symmetric kernel.
        plan: the block plan (block size, symmetry).
    """
    name: str
    root: str
    x1: str
    x2: str | None
    plan: kernels.BlockPlan


class ModelKernel:
    """Rebuilds a model's ``kernel_fn`` from its resolved config (in a job).

    Infinite-width kernels do not depend on the number of outputs of the
    readout layer, so ``out_dim`` only has to make the model buildable.

    Args:
        model_cfg: ``OmegaConf.to_container(cfg.model, resolve=True)``.
        out_dim: outputs of the readout layer.
    """

    def __init__(self, model_cfg: dict[str, Any], out_dim: int = 1):
        self.model_cfg = dict(model_cfg)
        self.out_dim = int(out_dim)

    def __call__(self) -> Callable:
        import ntkexp  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
        from hydra.utils import instantiate  # pylint: disable=g-import-not-at-top
        return instantiate(self.model_cfg, out_dim=self.out_dim)[2]


class _HookedCache(kernels.BlockCache):
    """A block cache that calls ``on_save`` after each block is on disk."""

    def __init__(self, root: Path, on_save: Callable[[int, int], None]):
        super().__init__(root)
        self._on_save = on_save

    def save(self, i: int, j: int, arrays: dict[str, np.ndarray]) -> None:
        super().save(i, j, arrays)
        self._on_save(i, j)


def _parse_fault(index: int) -> tuple[int, str] | None:
    """``(blocks, action)`` of the test hook for job ``index``, if set."""
    spec = os.environ.get(FAULT_ENV, '')
    if not spec:
        return None
    job, blocks, action = spec.split(':')
    if int(job) != index:
        return None
    if action not in ('kill', 'raise', 'preempt'):
        raise ValueError(f'{FAULT_ENV}={spec!r}: action must be kill, raise or '
                         'preempt')
    return int(blocks), action


class BlockJob(submitit.helpers.Checkpointable):
    """One submitit job: computes a group of blocks into the shared cache.

    Requeued after a timeout or preemption (``Checkpointable``), it restarts
    with the same blocks and skips those already on disk, so only the block
    that was in flight is lost.

    Args:
        index: the job's number in this submission (0-based).
        make_kernel_fn: a picklable callable returning ``kernel_fn``.
        model_id: the engine's model id (only recorded in the cache's meta).
        get: kernels computed, e.g. ``('nngp', 'ntk')``.
        x64: ``jax_enable_x64`` of the submitting process.
        parts: the kernels (:class:`KernelPart`).
        blocks: ``(part, i, j)`` blocks of this job.
        env: environment variables set before JAX starts its backend.
        matmul_precision: ``jax_default_matmul_precision`` of the submitting
          process (``None``: JAX's default, TF32 products on GPUs). A job is
          a fresh process, so it must be set again for its blocks to equal
          the one-process kernel and to match the cache key.
    """

    def __init__(self, index: int, make_kernel_fn: Callable[[], Callable],
                 model_id: str, get: Sequence[str], x64: bool,
                 parts: Sequence[KernelPart], blocks: Sequence[Block],
                 env: dict[str, str] | None = None,
                 matmul_precision: str | None = None):
        self.index = index
        self.make_kernel_fn = make_kernel_fn
        self.model_id = model_id
        self.get = tuple(get)
        self.x64 = bool(x64)
        self.parts = list(parts)
        self.blocks = [tuple(b) for b in blocks]
        self.env = dict(env or {})
        self.matmul_precision = matmul_precision
        self.restarts = 0

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Requeues this job (the cache is the checkpoint)."""
        self.restarts += 1
        print(f'[kernel job {self.index}] checkpointed for requeue '
              f'(restart {self.restarts})', flush=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def __call__(self) -> dict[str, Any]:
        os.environ.update(self.env)
        import jax  # pylint: disable=g-import-not-at-top
        jax.config.update('jax_enable_x64', self.x64)
        jax.config.update('jax_default_matmul_precision', self.matmul_precision)
        start = time.time()
        engine = kernels.KernelEngine(self.make_kernel_fn(), self.model_id,
                                      self.get, cache_dir=None, progress=False)
        fault = _parse_fault(self.index) if self.restarts == 0 else None
        saved = 0
        computed: list[Block] = []

        for p, part in enumerate(self.parts):
            mine = [(i, j) for q, i, j in self.blocks if q == p]
            if not mine:
                continue

            def on_save(i: int, j: int, p=p, part=part) -> None:
                nonlocal saved
                saved += 1
                computed.append((p, i, j))
                print(f'[kernel job {self.index}] {part.name} block ({i}, {j}) '
                      f'written ({len(computed)} this run; '
                      f'{time.time() - start:.1f}s)', flush=True)
                if fault is not None and saved == fault[0]:
                    _inject(fault[1], self.index, saved)

            x1 = np.load(part.x1, mmap_mode='r')
            x2 = None if part.x2 is None else np.load(part.x2, mmap_mode='r')
            cache = _HookedCache(Path(part.root), on_save)
            engine.compute_blocks(x1, x2, part.plan, cache, mine, desc=part.name)
        print(f'[kernel job {self.index}] done: {len(computed)} blocks computed, '
              f'{len(self.blocks) - len(computed)} already cached, '
              f'{time.time() - start:.1f}s (jax_enable_x64={self.x64}, '
              f'jax_default_matmul_precision={self.matmul_precision})',
              flush=True)
        return {'job': self.index, 'computed': computed,
                'restarts': self.restarts, 'seconds': time.time() - start,
                'device': str(jax.devices()[0]),
                'x64': bool(jax.config.jax_enable_x64),
                'matmul_precision': jax.config.jax_default_matmul_precision}


def _inject(action: str, index: int, blocks: int) -> None:
    """The test hook's fault (see the module docstring)."""
    print(f'[kernel job {index}] {FAULT_ENV}: {action} after {blocks} blocks',
          flush=True)
    if action == 'kill':
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == 'raise':
        raise RuntimeError(f'injected failure in kernel job {index} after '
                           f'{blocks} blocks ({FAULT_ENV})')
    elif action == 'preempt':
        os.kill(os.getpid(), submitit.JobEnvironment._usr_sig())  # pylint: disable=protected-access
        time.sleep(30)  # submitit's handler exits for requeue meanwhile


# Splitting ------------------------------------------------------------------


def split_blocks(blocks: Sequence[Block], jobs: int) -> list[list[Block]]:
    """Cuts ``blocks`` into at most ``jobs`` contiguous, non-empty groups.

    Group sizes differ by at most one; the groups are disjoint and cover
    ``blocks`` in order.
    """
    if jobs < 1:
        raise ValueError(f'jobs={jobs} must be >= 1')
    n = min(jobs, len(blocks))
    if n == 0:
        return []
    size, extra = divmod(len(blocks), n)
    groups, start = [], 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        groups.append(list(blocks[start:stop]))
        start = stop
    return groups


def count_blocks(root: Path | str) -> int:
    """Finished blocks in a block directory (one directory listing)."""
    try:
        with os.scandir(root) as entries:
            return sum(1 for e in entries if _BLOCK_FILE.match(e.name))
    except FileNotFoundError:
        return 0


def save_inputs(x: np.ndarray, directory: Path) -> Path:
    """Saves ``x`` once as ``<directory>/<sha256>.npy`` (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f'{kernels.array_digest(x)}.npy'
    if not path.exists():
        tmp = directory / f'.{path.stem}.{os.getpid()}.tmp.npy'
        with open(tmp, 'wb') as f:
            np.save(f, np.ascontiguousarray(x))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return path


# Executors ------------------------------------------------------------------


def executor_parameters(kcfg: DictConfig | dict, kind: str) -> dict[str, Any]:
    """submitit ``AutoExecutor`` parameters from ``cfg.kernel``.

    Args:
        kcfg: the ``kernel`` config node.
        kind: ``local`` or ``slurm``.

    Returns:
        Keyword arguments for ``AutoExecutor.update_parameters``.
    """
    slurm = kcfg.get('slurm', None) or {}
    if OmegaConf.is_config(slurm):
        slurm = OmegaConf.to_container(slurm, resolve=True)
    slurm = dict(slurm)
    params: dict[str, Any] = {
        'name': 'ntkexp-kernel',
        'timeout_min': int(slurm.pop('timeout_min', None) or 240),
    }
    if kind == 'slurm':
        for key, value in slurm.items():
            if value is None or value == {}:
                continue
            if key in _SLURM_RENAMED:
                params[_SLURM_RENAMED[key]] = value
            elif key in _GENERIC:
                params[key] = value
            else:
                params[key if key.startswith('slurm_') else f'slurm_{key}'] = value
        if 'gpus_per_node' in params:
            params['gpus_per_node'] = int(params['gpus_per_node'])
        if 'mem_gb' in params:
            params['mem_gb'] = float(params['mem_gb'])
    # One task per job: several tasks would compute the same blocks.
    params['nodes'] = 1
    params['tasks_per_node'] = 1
    return params


def _local_gpus() -> list[int]:
    """Physical GPU indices this process sees (empty when JAX runs on CPU)."""
    import jax  # pylint: disable=g-import-not-at-top
    if jax.default_backend() != 'gpu':
        return []
    count = len(jax.local_devices())
    visible = os.environ.get('CUDA_VISIBLE_DEVICES', '')
    if visible:
        ids = [v.strip() for v in visible.split(',') if v.strip()]
        if all(v.isdigit() for v in ids):
            return [int(v) for v in ids][:count]
    return list(range(count))


def submit(kind: str, folder: Path, params: dict[str, Any],
           job_fns: Sequence[BlockJob]) -> list[submitit.Job]:
    """Submits the block jobs: a SLURM job array, or local processes.

    Local jobs get one GPU each, round-robin over this process's GPUs (or
    none on CPU; then they run on CPU like this process). Their submitit
    controllers log to ``<folder>/controllers.log`` (:mod:`local_controllers`).
    """
    if kind == 'slurm':
        executor = submitit.AutoExecutor(folder=folder, cluster='slurm')
        executor.update_parameters(**params)
        with executor.batch():
            jobs = [executor.submit(fn) for fn in job_fns]
        return jobs
    executor = submitit.LocalExecutor(folder=folder)
    local = {k: v for k, v in params.items()
             if k in ('timeout_min', 'nodes', 'tasks_per_node')}
    gpus = _local_gpus()
    jobs = []
    with local_controllers.quiet():  # their tracebacks on Ctrl-C / cancel
        for k, fn in enumerate(job_fns):
            if gpus:
                executor.update_parameters(**local, gpus_per_node=1,
                                           visible_gpus=(gpus[k % len(gpus)],))
                fn.env.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
            else:
                executor.update_parameters(**local, gpus_per_node=0)
            jobs.append(executor.submit(fn))
    return jobs


# The run --------------------------------------------------------------------


def resolve_run_dir(cfg: DictConfig, run_dir: Path | str | None) -> Path:
    """Where job logs go: ``run_dir``, Hydra's output dir, or the cache."""
    if run_dir is not None:
        return Path(run_dir)
    try:
        from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # pylint: disable=broad-except
        pass
    return Path(cfg.paths.cache) / 'kernels'


def _job_error(job: submitit.Job, index: int, n_jobs: int,
               error: BaseException, missing: int, total: int,
               cache_dir: Path) -> KernelJobError:
    keep = (f'{total - missing} of {total} blocks are in the cache {cache_dir} '
            f'and stay there; re-run the same command to compute only the '
            f'{missing} still missing')
    if isinstance(error, submitit.core.utils.FailedJobError):
        return KernelJobError(
            f'kernel job {index} of {n_jobs} (submitit job {job.job_id}) failed; '
            f'logs: {job.paths.stderr} and {job.paths.stdout}. {keep}.\n{error}')
    tail = ''
    for path in (job.paths.stderr, job.paths.stdout):
        if path.exists():
            lines = path.read_text(errors='replace').splitlines()[-15:]
            tail += f'\n--- last lines of {path} ---\n' + '\n'.join(lines)
    return KernelJobError(
        f'kernel job {index} of {n_jobs} (submitit job {job.job_id}) died '
        f'without a result (killed, out of memory, node failure?); logs: '
        f'{job.paths.stderr} and {job.paths.stdout}. {keep}.{tail}')


def compute_kernels(cfg: DictConfig, engine: kernels.KernelEngine,
                    x_train: np.ndarray, x_test: np.ndarray, *,
                    run_dir: Path | str | None = None,
                    make_kernel_fn: Callable[[], Callable] | None = None,
                    poll_s: float | None = None,
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Train-train and test-train kernels, missing blocks computed by jobs.

    Args:
        cfg: the run's config (``kernel.jobs``, ``kernel.executor``,
            ``kernel.slurm``, ``model``, ``paths``).
        engine: the block engine (its cache is shared with the jobs).
        x_train: training inputs.
        x_test: test inputs.
        run_dir: the run directory; job logs go to ``<run_dir>/kernel_jobs``
            (default: Hydra's output directory when running under Hydra).
        make_kernel_fn: picklable callable rebuilding ``engine.kernel_fn`` in a
            job (default: :class:`ModelKernel` of ``cfg.model``).
        poll_s: seconds between progress checks (default 1 local, 15 SLURM).

    Returns:
        ``(k_train_train, k_test_train)``, each ``{get: np.ndarray}``, the
        same as ``engine(x_train)`` and ``engine(x_test, x_train)``.

    Raises:
        ValueError: the engine has no disk cache (jobs share blocks through it).
        KernelJobError: a job failed or died (its error and log paths).
    """
    import jax  # pylint: disable=g-import-not-at-top
    kcfg = cfg.get('kernel', {})
    n_jobs = int(kcfg.get('jobs', 1))
    kind = str(kcfg.get('executor', 'local'))
    if engine.cache_dir is None:
        raise ValueError(f'kernel.jobs={n_jobs} shares blocks through the disk '
                         'cache, which is off; set kernel.cache=true and '
                         'paths.cache to a directory every job can reach')
    if kind not in ('local', 'slurm'):
        raise ValueError(f'kernel.executor={kind!r} is invalid; use local or slurm')
    cache_dir = Path(engine.cache_dir)
    x_train = np.asarray(x_train)
    x_test = np.asarray(x_test)
    inputs = cache_dir / INPUTS_DIR
    train_path = str(save_inputs(x_train, inputs))
    test_path = str(save_inputs(x_test, inputs))

    parts, caches = [], []
    for name, x1, x1_path, x2, x2_path in (
            ('train x train', x_train, train_path, None, None),
            ('test x train', x_test, test_path, x_train, train_path)):
        plan, cache = engine.plan(x1, x2)
        parts.append(KernelPart(name, str(cache.root), x1_path, x2_path, plan))
        caches.append(cache)
    missing = [(p, i, j) for p, (part, cache) in enumerate(zip(parts, caches))
               for i, j in part.plan.blocks() if not cache.has(i, j)]
    total = sum(len(part.plan.blocks()) for part in parts)

    def done_count() -> int:
        return sum(count_blocks(part.root) for part in parts)

    before = done_count()
    if missing:
        folder = resolve_run_dir(cfg, run_dir) / JOB_LOG_DIR
        folder.mkdir(parents=True, exist_ok=True)
        make = make_kernel_fn or ModelKernel(
            OmegaConf.to_container(cfg.model, resolve=True))
        x64 = bool(jax.config.read('jax_enable_x64'))
        matmul = jax.config.jax_default_matmul_precision
        groups = split_blocks(missing, n_jobs)
        job_fns = [BlockJob(k, make, engine.model_id, engine.get, x64, parts, g,
                            matmul_precision=matmul)
                   for k, g in enumerate(groups)]
        jobs = submit(kind, folder, executor_parameters(kcfg, kind), job_fns)
        ids = [str(j.job_id) for j in jobs]
        log.info('kernel: %d of %d blocks missing (block size %d/%d); submitted '
                 '%d %s jobs (%s); logs in %s', len(missing), total,
                 parts[0].plan.block, parts[1].plan.block, len(jobs), kind,
                 ', '.join(ids) if len(ids) <= 4 else
                 f'{ids[0]} ... {ids[-1]}', folder)
        _wait(jobs, kind, done_count, before, total, cache_dir,
              engine.progress, poll_s if poll_s is not None else
              (1.0 if kind == 'local' else 15.0))
    still = [(p, i, j) for p, i, j in missing if not caches[p].has(i, j)]
    if still:
        raise KernelJobError(
            f'{len(still)} of {total} kernel blocks are missing after every job '
            f'finished (first: {parts[still[0][0]].name} block {still[0][1:]}); '
            're-run the same command to compute them')
    engine.computed_blocks += done_count() - before
    k_tt = engine.assemble(parts[0].plan, caches[0], x_train.dtype)
    k_st = engine.assemble(parts[1].plan, caches[1], x_test.dtype)
    return k_tt, k_st


def _cancel(jobs: Sequence[submitit.Job], kind: str) -> None:
    """Cancels jobs: ``scancel`` once per SLURM array, SIGINT locally."""
    if not jobs:
        return
    if kind == 'slurm':
        import subprocess  # pylint: disable=g-import-not-at-top
        arrays = sorted({str(job.job_id).split('_')[0] for job in jobs})
        subprocess.call(['scancel', *arrays])
        return
    for job in jobs:
        try:
            job.cancel(check=False)
        except Exception:  # pylint: disable=broad-except
            pass


class _Terminated(KernelJobError):
    """This process got SIGTERM while waiting (e.g. its own time limit)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    del frame
    raise _Terminated(f'signal {signum} while waiting for the kernel jobs; '
                      'they were cancelled and the blocks written stay cached: '
                      're-run the same command to compute only the missing ones')


def _wait(jobs: list[submitit.Job], kind: str, done_count: Callable[[], int],
          before: int, total: int, cache_dir: Path, progress: bool,
          poll_s: float) -> None:
    """Waits for the jobs with a blocks done / total bar and ETA.

    If this process stops while waiting (an error, Ctrl-C, SIGTERM), the jobs
    still running are cancelled, so a re-run never races them for a block.

    Raises:
        KernelJobError: at once for a job that raised (the others are
            cancelled); after the others finished for one that died.
    """
    import threading  # pylint: disable=g-import-not-at-top
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    for job in jobs:  # no need to wait long for a result file locally
        job._results_timeout_s = 2 if kind == 'local' else 60  # pylint: disable=protected-access
    bar = tqdm(total=total, initial=before, desc='kernel blocks (jobs)',
               unit='block', disable=not progress, file=sys.stderr)
    pending = dict(enumerate(jobs))
    died: list[tuple[int, submitit.Job, BaseException]] = []
    start, last_log = time.time(), time.time()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        while pending:
            time.sleep(poll_s)
            done = done_count()
            bar.update(done - bar.n)
            if time.time() - last_log > 300:
                last_log = time.time()
                rate = (done - before) / max(time.time() - start, 1e-9)
                eta = (total - done) / rate if rate > 0 else float('inf')
                log.info('kernel blocks %d / %d, ETA %.0f s', done, total, eta)
            for index, job in list(pending.items()):
                if not job.done():
                    continue
                del pending[index]
                error = job.exception()
                if error is None:
                    continue
                if isinstance(error, submitit.core.utils.FailedJobError):
                    raise _job_error(job, index, len(jobs), error,
                                     total - done_count(), total, cache_dir)
                died.append((index, job, error))
        bar.update(done_count() - bar.n)
    finally:
        if main:
            signal.signal(signal.SIGTERM,
                          signal.SIG_DFL if previous is None else previous)
        bar.close()
        _cancel(list(pending.values()), kind)  # only on an error / interrupt
    if died:
        index, job, error = died[0]
        raise _job_error(job, index, len(jobs), error, total - done_count(),
                         total, cache_dir)
