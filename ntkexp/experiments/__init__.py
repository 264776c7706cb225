"""Experiments: each module has ``run(cfg, run_dir, rows)`` (see ntkexp.runner)."""
