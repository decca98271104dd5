"""Query results for people and for files: money as money, every column in every format.

Terminal tables (:func:`rich_table`) and plain text tables (:func:`plain_table`, used when
stdout is not a terminal: never cut at any width) format each value by column: money columns
(:func:`is_money`, names ending in ``_usd``) as ``$32,617,000.00``, other numbers with
thousands separators and at most six significant decimals, never in scientific notation
above 1e-6; lists and structs as JSON. :func:`write_frame` writes CSV (nested columns as JSON
text), JSON (one object per row, nested values kept) or Parquet (types kept).
"""

from __future__ import annotations

import io
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

import polars as pl

FORMATS = ("table", "csv", "json", "parquet")
"""Output formats of ``liqbt query``."""

_PLAIN_INT_NAMES = ("step", "seed", "year", "row")


def is_money(column: str) -> bool:
    """Tell whether a column holds USD amounts (the ``_usd`` naming convention)."""
    return column.endswith("_usd") or "_usd_" in column


def format_number(value: float, money: bool = False) -> str:
    """Format a number for reading: ``$1,234.50`` (money) or ``1,234.5`` / ``0.000123``.

    Parameters
    ----------
    value : float
    money : bool
        Format as USD with two decimals.

    Returns
    -------
    str
        Never scientific notation for ``1e-6 <= |value|``; ``NaN`` and ``inf`` as such.
    """
    if isinstance(value, Decimal):
        value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if money:
        return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
    a = abs(value)
    if a == 0:
        return "0"
    if a < 1e-6:
        return f"{value:.3e}"
    digits = math.floor(math.log10(a)) + 1  # digits before the point (<= 0 below 1)
    decimals = max(0, 6 - digits) if a >= 1 else 6 - digits
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(value, column: str = "") -> str:
    """Format one value of a result for a text table (see the module docstring)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        money = is_money(column)
        if money:
            return format_number(float(value), True)
        plain = column.endswith("_id") or column in _PLAIN_INT_NAMES
        return str(value) if plain else f"{value:,}"
    if isinstance(value, float | Decimal):
        return format_number(value, is_money(column))
    if isinstance(value, datetime | date | time | timedelta):
        return str(value)
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def text_columns(frame: pl.DataFrame) -> list[list[str]]:
    """Return every column of ``frame`` formatted as text, column by column."""
    return [[format_value(v, name) for v in frame[name].to_list()] for name in frame.columns]


def plain_table(frame: pl.DataFrame) -> str:
    """Return ``frame`` as an aligned plain-text table: a header, one line per row.

    Numbers are right-aligned; no column is cut, whatever its width.
    """
    cols = text_columns(frame)
    lines = []
    widths = [max([len(name), *map(len, col)]) for name, col in zip(frame.columns, cols,
                                                                      strict=True)]
    right = [_numeric(t) for t in frame.dtypes]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    lines.append(line(list(frame.columns)))
    for k in range(frame.height):
        lines.append(line([col[k] for col in cols]))
    return "\n".join(lines) + "\n"


def rich_table(frame: pl.DataFrame):
    """Return ``frame`` as a ``rich.table.Table`` for a terminal."""
    from rich.table import Table

    table = Table(show_lines=False)
    for name, dtype in zip(frame.columns, frame.dtypes, strict=True):
        table.add_column(name, justify="right" if _numeric(dtype) else "left",
                         overflow="fold")
    cols = text_columns(frame)
    for k in range(frame.height):
        table.add_row(*(col[k] for col in cols))
    return table


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with nested and binary columns as JSON / hex text (CSV holds no lists)."""
    out = []
    for name, dtype in zip(frame.columns, frame.dtypes, strict=True):
        if dtype.is_nested() or dtype == pl.Object:
            out.append(pl.Series(name, [None if v is None else
                                        json.dumps(v, default=str, ensure_ascii=False)
                                        for v in frame[name].to_list()], pl.String))
        elif dtype == pl.Binary:
            out.append(pl.Series(name, [None if v is None else v.hex()
                                        for v in frame[name].to_list()], pl.String))
        else:
            out.append(frame[name])
    return pl.DataFrame(out) if out else frame


def write_frame(frame: pl.DataFrame, fmt: str, out: IO[bytes] | Path) -> None:
    """Write a result as CSV, JSON or Parquet to a binary stream or a file path.

    Parameters
    ----------
    frame : polars.DataFrame
    fmt : {"csv", "json", "parquet"}
    out : binary file object or Path

    Raises
    ------
    ValueError
        For another format.
    """
    if fmt == "csv":
        data = csv_ready(frame).write_csv().encode()
    elif fmt == "json":
        data = (frame.write_json() + "\n").encode()
    elif fmt == "parquet":
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd")
        data = buf.getvalue()
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS[1:])}")
    if isinstance(out, Path):
        out.write_bytes(data)
    else:
        out.write(data)
