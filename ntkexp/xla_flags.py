"""Defaults for ``XLA_FLAGS`` that leave the user's own settings alone."""

import os


def set_default(flag: str, value: str) -> None:
    """Appends ``flag=value`` to ``XLA_FLAGS`` unless it already names ``flag``.

    XLA reads ``XLA_FLAGS`` when JAX starts its first backend, so call this
    before any computation runs; subprocesses inherit the result.

    Args:
        flag: the flag's name with its dashes, e.g. ``--xla_cpu_max_isa``.
        value: its value.
    """
    flags = os.environ.get('XLA_FLAGS', '')
    if flag not in flags:
        os.environ['XLA_FLAGS'] = f'{flags} {flag}={value}'.strip()
