"""Shared test set-up: every test starts in float32 with exact float32 products.

Matrix products run at ``highest`` precision (as ``ntkexp run`` does by default,
``matmul_precision=highest``): on a GPU, JAX's default lets float32 products use
TF32, whose 1e-3 relative error would swamp the comparisons between different
but equivalent computations (structured derivatives vs Jacobian contraction,
blocks vs one call) that the tests make.
"""

import os
import signal
import time

# Compile fast, run slower: most of the suite's time is XLA compiling many
# small programs, not running them. LLVM at -O0 cuts tests/test_fastconv.py
# from 336 s to 190 s on this 2-core machine (its results still equal
# neural-tangents to 1e-12; fast math stays off, so no reassociation). Set
# here, before JAX starts a backend, so subprocesses the tests start inherit
# it; a user's own --xla_backend_optimization_level wins. Runs (ntkexp run,
# make bench) keep XLA's default.
from ntkexp import xla_flags  # noqa: E402  (also makes neural-tangents work on current JAX)

xla_flags.set_default('--xla_backend_optimization_level', '0')

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update('jax_default_matmul_precision', 'highest')


@pytest.fixture(autouse=True)
def _default_precision():
    """Restores JAX's precision settings after each test (runs change them)."""
    before = bool(jax.config.jax_enable_x64)
    matmul = jax.config.jax_default_matmul_precision
    yield
    jax.config.update('jax_enable_x64', before)
    jax.config.update('jax_default_matmul_precision', matmul)


def write_experiment_module(folder, name, source):
    """Writes ``folder/<name>.py`` (an experiment ``run``) for an ``ntkexp``
    subprocess: returns the environment that imports it and the override
    ``experiment.run=<name>.run`` that runs it."""
    (folder / f'{name}.py').write_text(source)
    paths = [str(folder)] + [p for p in (os.environ.get('PYTHONPATH'),) if p]
    return {'PYTHONPATH': os.pathsep.join(paths)}, f'experiment.run={name}.run'


class SlowExperiment:
    """An experiment module, ``slow_experiment``, whose ``run`` writes one row
    and then sleeps two minutes: a run to stop from outside."""

    SOURCE = ('import time\n'
              'def run(cfg, run_dir, rows):\n'
              '    rows.add("loss", 1.0, step=0)\n'
              '    time.sleep(120)\n')

    def __init__(self, folder):
        self.env, self.override = write_experiment_module(
            folder, 'slow_experiment', self.SOURCE)

    @staticmethod
    def signal_after_first_row(process, runs, signum=signal.SIGTERM,
                               timeout=120.0, group=False):
        """Sends ``signum`` to ``process`` once a ``rows.jsonl`` under
        ``runs`` has a row (the run is then inside the experiment); with
        ``group``, to its whole process group, as a terminal's Ctrl-C does
        (start it with ``start_new_session=True``)."""
        deadline = time.time() + timeout
        while time.time() < deadline and process.poll() is None:
            rows = list(runs.rglob('rows.jsonl')) if runs.exists() else []
            if rows and rows[0].read_text().strip():
                break
            time.sleep(0.2)
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


@pytest.fixture
def slow_experiment(tmp_path):
    return SlowExperiment(tmp_path)


@pytest.fixture
def experiment_module(tmp_path):
    """``make(name, source) -> (env, override)``: :func:`write_experiment_module`
    in ``tmp_path``."""
    return lambda name, source: write_experiment_module(tmp_path, name, source)


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the plots save, by name: each is still written (and closed)
    by ``ntkexp.plots.figures.save``, and its axes, lines and texts stay
    readable here."""
    from ntkexp.plots import figures  # pylint: disable=g-import-not-at-top
    kept = {}
    save = figures.save

    def keep(fig, out_dir, name, *args, **kwargs):
        kept[name] = fig
        return save(fig, out_dir, name, *args, **kwargs)

    monkeypatch.setattr(figures, 'save', keep)
    return kept
