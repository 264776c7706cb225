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


def normalised(text: str) -> str:
    """``text`` with every run of whitespace (line breaks too) one space."""
    return ' '.join(text.split())


def assert_readme_says(readme: Path, text: str) -> None:
    """Fail unless ``readme`` contains ``text``, line breaks aside."""
    body = normalised(readme.read_text())
    text = normalised(text)
    assert text in body, (f'{readme.relative_to(REPO)} should say, from the '
                          f'tables:\n{text}')
