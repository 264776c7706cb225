"""Helpers for the claim tests: a README's numbers recomputed from the
committed result tables under ``results/``.

A claim is a piece of README text and the function that writes it from the
tables, rounded half up as the READMEs round; line breaks do not count
(``assert_readme_says``). ``tests/test_readme_numbers.py`` checks README.md,
``tests/test_study_numbers_*.py`` the studies' own READMEs.
"""

from __future__ import annotations

import decimal
import functools
import math
from pathlib import Path

import pandas as pd

from ntkexp.fastconv.bench import CIFAR10_ENTRIES

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / 'results'


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, halves rounded up (0.715 -> 0.72)."""
    quantum = decimal.Decimal(1).scaleb(-digits)
    return str(decimal.Decimal(repr(float(value))).quantize(
        quantum, rounding=decimal.ROUND_HALF_UP))


def span(values, digits: int) -> str:
    """``low-high`` of ``values`` with ``digits`` decimals."""
    values = pd.Series(values, dtype=float)
    return f'{fixed(values.min(), digits)}-{fixed(values.max(), digits)}'


@functools.cache
def table(path: str) -> pd.DataFrame:
    path = RESULTS / path
    return pd.read_parquet(path) if path.suffix == '.parquet' else pd.read_csv(path)


def where(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    for column, value in columns.items():
        frame = frame[frame[column] == value]
    assert not frame.empty, columns
    return frame


def one(frame: pd.DataFrame, column: str = 'value', **columns) -> float:
    values = where(frame, **columns)[column]
    assert len(values) == 1, (columns, len(values))
    return float(values.iloc[0])


def significant(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` significant figures, halves up (0.07246 -> 0.072,
    518.7 -> 520)."""
    places = digits - 1 - math.floor(math.log10(abs(value)))
    if places >= 0:
        return fixed(value, places)
    return str(int(fixed(value / 10 ** -places, 0)) * 10 ** -places)


def significant_span(values, digits: int = 2) -> str:
    """``low-high`` of ``values`` to ``digits`` significant figures."""
    values = pd.Series(values, dtype=float)
    return f'{significant(values.min(), digits)}-{significant(values.max(), digits)}'


def scientific(value: float, digits: int = 1) -> str:
    """``value`` as ``3.0e-7``: ``digits`` decimals in the mantissa, halves up
    (9.96e-5 -> 1.0e-4)."""
    exponent = math.floor(math.log10(abs(value)))
    mantissa = fixed(value / 10.0 ** exponent, digits)
    if abs(float(mantissa)) >= 10:
        exponent += 1
        mantissa = fixed(value / 10.0 ** exponent, digits)
    return f'{mantissa}e{exponent}'


def signed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals and its sign (+0.07, -0.04), unsigned
    where it rounds to zero from below (-0.0017 -> 0.00)."""
    text = fixed(value, digits)
    if text.startswith('-'):
        return text[1:] if float(text) == 0 else text
    return '+' + text


def table_row(*cells: str) -> str:
    """A Markdown table row."""
    return '| ' + ' | '.join(cells) + ' |'


# --- benchmark figures -----------------------------------------------------------


def us_per_pair(entries_per_s: float) -> float:
    """Microseconds per kernel entry (a pair of images)."""
    return 1e6 / entries_per_s


def cifar10_hours(entries_per_s: float) -> float:
    """Hours for the full CIFAR-10 train-train triangle (60,000 images) at ``entries_per_s``."""
    return CIFAR10_ENTRIES / entries_per_s / 3600


def h100_timings(arch: str) -> pd.DataFrame:
    """The fourteenth session's H100 timings of ``arch``, indexed by method
    (Myrtle-5, CNN-GAP: call 1; WRN-10-1: call 3)."""
    name = {'myrtle5': 'myrtle5_pallas', 'cnn_gap': 'cnn_gap_pallas', 'wrn': 'cnn_gap_wrn'}[arch]
    rows = table(f'bench/session14/fastconv_{name}_h100_n32.csv')
    return where(rows, arch=arch).set_index('method')


def projected_speedups(candidate: pd.Series, reference: pd.Series, arch: str) -> list[float]:
    """A modelled program's speedup over plain neural-tangents on the H100: its
    ``model_us`` and ``serial_us`` totals, each scaled by the timed Pallas
    ``diagonal`` program's (8 warps) ratio to its own model (``reference``),
    against plain neural-tangents' measured us per pair of ``arch``."""
    return [us_per_pair(h100_timings(arch).loc['nt', 'entries_per_s']) / us
            for us in projected_us(candidate, reference)]


def projected_us(candidate: pd.Series, reference: pd.Series) -> list[float]:
    """The us per pair :func:`projected_speedups` divides by."""
    measured = us_per_pair(
        h100_timings('myrtle5').loc['fastconv_pallas_diagonal_w8', 'entries_per_s'])
    return [candidate[total] * measured / reference[total]
            for total in ('model_us', 'serial_us')]


def normalised(text: str) -> str:
    """``text`` with every run of whitespace (line breaks too) one space."""
    return ' '.join(text.split())


def assert_readme_says(readme: Path, text: str) -> None:
    """Fail unless ``readme`` contains ``text``, line breaks aside."""
    body = normalised(readme.read_text())
    text = normalised(text)
    assert text in body, (f'{readme.relative_to(REPO)} should say, from the '
                          f'tables:\n{text}')
