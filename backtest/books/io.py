"""Parquet I/O shared by every kind of book: ``liqbt.*`` metadata, atomic writes, UTC times."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.atomic import atomic_path
from backtest.errors import BookError
from backtest.validation import check_input_file, check_output_file

_PREFIX = "liqbt."


def read_book_table(path: str | Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """Read a book's Parquet file: its rows (not yet validated) and its ``liqbt.*`` metadata.

    Returns
    -------
    frame : polars.DataFrame
    meta : dict of str to str
        Metadata keys without the ``liqbt.`` prefix.

    Raises
    ------
    BookError
        If the file is missing, a directory, unreadable or not Parquet (names the file).
    """
    path = check_input_file(path, "book", BookError)
    try:
        schema = pq.read_schema(path)  # the footer only: metadata, and a check it is Parquet
        # polars reads the columns itself: no Arrow table held beside the frame (a book of
        # 50M accounts is GBs)
        frame = pl.read_parquet(path)
    except (pa.ArrowException, pl.exceptions.PolarsError, OSError) as exc:
        raise BookError(f"not a readable Parquet file ({exc})", path) from None
    meta = {k.decode()[len(_PREFIX):]: v.decode()
            for k, v in (schema.metadata or {}).items() if k.decode().startswith(_PREFIX)}
    return frame, meta


def write_book_table(frame: pl.DataFrame, meta: dict[str, object], path: str | Path) -> Path:
    """Write a book's rows atomically as Parquet (zstd) with ``liqbt.*`` metadata.

    Parameters
    ----------
    frame : polars.DataFrame
    meta : dict
        Metadata (values written as ``str``), keys without the ``liqbt.`` prefix.
    path : str or Path
        Destination; written under a temporary name and renamed when complete.

    Returns
    -------
    Path

    Raises
    ------
    ConfigError
        If ``path`` is a directory or its folder cannot be created or written (checked
        before anything is written).
    """
    path = check_output_file(path, "book file")
    table = frame.to_arrow().replace_schema_metadata(
        {f"{_PREFIX}{k}".encode(): str(v).encode() for k, v in meta.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def as_utc(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Return ``column`` as millisecond UTC timestamps (naive values are taken as UTC).

    Raises
    ------
    BookError
        If the column is not a timestamp.
    """
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise BookError(f"column {column} must be a timestamp, not {dtype}")
    expr = pl.col(column)
    expr = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr
    return expr.dt.convert_time_zone("UTC").cast(pl.Datetime("ms", "UTC"))
