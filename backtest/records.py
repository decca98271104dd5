"""Read a user's table of records (CSV, Parquet, JSON) the same way for every importer.

Used by ``liqbt book import`` (:mod:`backtest.books.positions`) and ``liqbt data import-feed``
(:mod:`backtest.tapes.feed`): chain and dashboard exports come as CSV, Parquet or JSON, and
write big integers as strings, so every JSON or CSV value is read as a string and each
importer casts the columns it needs with :func:`as_numbers`, naming the first bad row itself.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl


def read_records(path: Path, data: bytes, kind: str, records_key: str | None = None
                 ) -> pl.DataFrame:
    """Return a file's records as a frame, in file order.

    Parameters
    ----------
    path : Path
        The file (its suffix picks the format: ``.csv``, ``.parquet``/``.pq``, ``.json``).
    data : bytes
        Its bytes.
    kind : str
        What the records are, for messages (``positions``, ``feed``).
    records_key : str, optional
        JSON: the key of the top-level object holding the list.

    Returns
    -------
    polars.DataFrame
        CSV: every column a string. Parquet: its own types. JSON: a list of objects gives one
        string column per key; a list of arrays gives columns ``"0"``, ``"1"``, ... by position
        (arrays of unequal length are padded with nulls).

    Raises
    ------
    ValueError
        Unknown suffix, unreadable content, a missing ``records_key``, or JSON that is not a
        non-empty list of objects or of arrays; the message says which (callers add the file).
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(io.BytesIO(data), infer_schema=False)
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ValueError(f"cannot read {kind}: {str(exc).splitlines()[0]}") from None
    if suffix != ".json":
        raise ValueError(f"unknown {kind} format {suffix!r}: give .csv, .parquet or .json")
    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"not a readable JSON file ({exc})") from None
    if records_key is not None:
        if not isinstance(rows, dict) or records_key not in rows:
            raise ValueError(f"no key {records_key!r} at the top of the JSON object")
        rows = rows[records_key]
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        return pl.DataFrame([{k: None if v is None else str(v) for k, v in r.items()}
                             for r in rows], infer_schema_length=None)
    if isinstance(rows, list) and rows and all(isinstance(r, list) for r in rows):
        width = max(len(r) for r in rows)
        return pl.DataFrame({str(k): [str(r[k]) if k < len(r) and r[k] is not None else None
                                      for r in rows] for k in range(width)})
    raise ValueError(f"expected a non-empty JSON list of {kind} records (objects or arrays)"
                     + ("" if records_key else "; give the key holding it (--records-key)"))


def as_numbers(column: pl.Series) -> np.ndarray:
    """Return a column's values as float64, NaN where a value is missing or not a number.

    Parameters
    ----------
    column : polars.Series
        Strings (leading and trailing spaces ignored) or numbers, shape (N,).

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
    """
    values = column.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return values.fill_null(np.nan).to_numpy()


def positive_numbers(column: pl.Series, name: str) -> np.ndarray:
    """Return a column's values as float64, each a positive finite number.

    Parameters
    ----------
    column : polars.Series
        Strings or numbers, shape (N,).
    name : str
        What the column holds, for the message.

    Returns
    -------
    numpy.ndarray of float64, shape (N,)

    Raises
    ------
    ValueError
        The first value that is missing, not a number, not finite or not above 0, named with
        its row (``row 3: price '-1' is not a positive number``).
    """
    values = as_numbers(column)
    bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
    if bad.size:
        raise ValueError(f"row {bad[0]}: {name} {column[int(bad[0])]!r} is not a positive number")
    return values

