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


def normalised(text: str) -> str:
    """``text`` with every run of whitespace (line breaks too) one space."""
    return ' '.join(text.split())


def assert_readme_says(readme: Path, text: str) -> None:
    """Fail unless ``readme`` contains ``text``, line breaks aside."""
    body = normalised(readme.read_text())
    text = normalised(text)
    assert text in body, (f'{readme.relative_to(REPO)} should say, from the '
                          f'tables:\n{text}')
