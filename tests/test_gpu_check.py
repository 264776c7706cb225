"""tools/gpu_check.sh's shape: what it leaves under $OUT fits what the device
returns (at most 8 files, no more than 2 folders down: the device README's
Limits), and every step runs.

The benches themselves are replaced by a stand-in Python that writes the file
each ``--out`` names (a folder for ``ntkexp.bench``, as the real one does), so
this checks the script, in a second, not the benches (their own tests do).
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / 'tools' / 'gpu_check.sh'
#: The device's limit on files returned from $OUT.
DEVICE_FILES = 8

STAND_IN = """#!/usr/bin/env bash
# A stand-in for python: `-m MODULE ... --out PATH` writes PATH (a folder
# holding one CSV for ntkexp.bench); `-` reads a script from stdin.
module=''; out=''
while [ $# -gt 0 ]; do
  case $1 in
    -m) module=$2; shift ;;
    --out) out=$2; shift ;;
    -) cat > /dev/null ;;
  esac
  shift
done
echo "stand-in python: $module" >&2
if [ -n "$out" ]; then
  if [ "$module" = ntkexp.bench ]; then
    mkdir -p "$out" && echo a,b > "$out/bench_cpu.csv"
  else
    echo a,b > "$out"
  fi
fi
"""


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / 'python'
    path.write_text(STAND_IN)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def run_check(out: Path, python: Path, **env) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != 'CHOICE'}
    env = dict(inherited, DRY='1', OUT=str(out), PYTHON=str(python), **env)
    return subprocess.run(['bash', str(SCRIPT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120,
                          check=False)


def steps_run(out: Path) -> list[str]:
    """The names of the steps the log says ran, each checked to exit 0."""
    log = (out / 'log.txt').read_text()
    ended = [line[4:].split(': exit ') for line in log.splitlines()
             if line.startswith('=== ') and ': exit ' in line]
    assert all(status.startswith('0 ') for _, status in ended), log
    return [name for name, _ in ended]


@pytest.mark.parametrize('choice', ['', 'diagonal_first_masked:8'])
def test_gpu_check_leaves_no_more_files_than_the_device_returns(
        tmp_path, stand_in, choice):
    """Without a Pallas kind to set, five steps; with one (``bench_targets
    --choice``, here given as CHOICE), ``make bench``'s rows of it too,
    right after the empirical step: 8 files either way, at most."""
    out = tmp_path / 'out'
    result = run_check(out, stand_in, CHOICE=choice)
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(out) for p in out.rglob('*') if p.is_file())
    assert len(files) <= DEVICE_FILES, files
    assert all(len(f.parts) <= 3 for f in files), files
    assert {'log.txt', 'targets.md'} <= {str(f) for f in files}
    steps = ['first_relu', 'gap_tail', 'empirical', 'fastconv_variants',
             'profile']
    if choice:
        steps.insert(3, 'make_bench_auto')
    assert steps_run(out) == steps
    log = (out / 'log.txt').read_text()
    assert 'WARNING' not in log
    assert f'choice for fast_kernel=auto: {choice or "none (XLA)"}' in log
    if choice:
        assert f'--gpu-auto-pallas-kind {choice}' in log


def test_gpu_check_skips_the_steps_past_its_deadline(tmp_path, stand_in):
    """A step with under 20 s left before DEADLINE is skipped, and the
    targets are still written: the device call ends inside its timeout."""
    out = tmp_path / 'out'
    result = run_check(out, stand_in, DEADLINE='0')
    assert result.returncode == 0, result.stderr
    assert steps_run(out) == []
    log = (out / 'log.txt').read_text()
    assert log.count(': skipped, ') == 5
    assert (out / 'targets.md').exists()


def test_gpu_check_warns_when_out_holds_more_than_the_device_returns(
        tmp_path, stand_in):
    """Eight files with a choice to time; a ninth left there is named."""
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'left_over.txt').write_text('a file the device would drop\n')
    result = run_check(out, stand_in, CHOICE='diagonal_first_masked:8')
    assert result.returncode == 0, result.stderr
    assert f'the device returns at most {DEVICE_FILES}' in result.stdout
    assert 'left_over.txt' in (out / 'log.txt').read_text()
