"""Every `ntkexp run` command written in the configs' headers, the README, the
docs, the results' READMEs and mk/repro.mk reads as Hydra overrides (a sweep
with its -m) and names existing config groups and keys
(:func:`ntkexp.cli.check_override_syntax`, :func:`~ntkexp.cli.check_group_overrides`,
:func:`~ntkexp.cli.check_key_overrides`), so a documented command does not fail
on a renamed or mistyped key."""

import re
import shlex
from pathlib import Path

from ntkexp import cli

REPO = Path(__file__).resolve().parent.parent
# `ntkexp run` and its arguments up to the end of the command in Markdown, YAML
# comments and make recipes. Commands with placeholders (`...`, `$VAR`, `<...>`)
# are skipped, and optional arguments written `[key=value]` are dropped.
COMMAND = re.compile(r'ntkexp run ([^`"\n;|&)#]*)')


def documented_commands() -> dict[str, str]:
    """``{command arguments: first file that shows them}``."""
    files = sorted([*REPO.glob('conf/**/*.yaml'), REPO / 'README.md',
                    *REPO.glob('docs/**/*.md'), *REPO.glob('results/**/README.md'),
                    REPO / 'mk' / 'repro.mk'])
    commands = {}
    for path in files:
        for match in COMMAND.finditer(path.read_text()):
            args = match.group(1).strip().rstrip('\\').strip()
            if any(mark in args for mark in ('...', '$', '<')):
                continue
            commands.setdefault(args, str(path.relative_to(REPO)))
    return commands


def test_documented_commands_name_existing_groups_and_keys(capsys):
    commands = documented_commands()
    assert len(commands) > 50  # the configs' headers alone have more
    bad = []
    for args, where in commands.items():
        try:
            overrides = [a for a in shlex.split(args) if not a.startswith('[')]
        except ValueError:  # a command cut by the pattern (an open quote)
            continue
        try:
            cli.check_override_syntax(overrides)  # incl. a sweep without -m
            cli.check_inspection_flags(overrides)
            cli.check_group_overrides(overrides)
            cli.check_key_overrides(overrides)
        except SystemExit:
            bad.append(f'{where}: ntkexp run {args}: {capsys.readouterr().err.strip()}')
    assert not bad, '\n'.join(bad)
