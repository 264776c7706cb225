"""What the timing scripts of ``docs/scripts/`` share.

* :func:`in_fresh_process`: one measurement in a fresh Python process (a
  precision set per process, ``jax_enable_x64``; a crash of XLA that must not
  end the whole script);
* :func:`write_rows`: the rows as a table with the command that made them in
  its ``command`` column (every committed figure names its command), written
  as CSV when asked.

The scripts import it as a sibling module (``python docs/scripts/<name>.py``
puts ``docs/scripts`` first on ``sys.path``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd


def in_fresh_process(script: str, args: Sequence[str], tries: int = 1) -> str:
    """The last line ``python script *args`` prints, run in a new process.

    Args:
        script: path of the script (its ``__file__``).
        args: its command-line arguments.
        tries: runs allowed; a run that exits with an error is run again
            until then.

    Raises:
        RuntimeError: every run failed; the message ends with the last
            run's error output.
    """
    for attempt in range(1, tries + 1):
        done = subprocess.run([sys.executable, script, *args],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip().splitlines()[-1]
        if attempt < tries:
            print(f"  {' '.join(args)}: exit status {done.returncode}, "
                  'trying again', flush=True)
    raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed {tries} "
                       f'time(s), last exit status {done.returncode}:\n'
                       + done.stderr[-2000:])


def write_rows(rows: Sequence[dict[str, Any]], script: str,
               argv: Optional[Sequence[str]], out: Optional[str]
               ) -> pd.DataFrame:
    """``rows`` as a table whose ``command`` column is ``python
    docs/scripts/<script> <argv>`` (``argv`` None: this process's), written to
    ``out`` as CSV unless it is None."""
    frame = pd.DataFrame(rows)
    frame['command'] = f'python docs/scripts/{Path(script).name} ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    if out:
        frame.to_csv(out, index=False)
        print(f'wrote {out}')
    return frame
