"""Write a run directory: Parquet tables and the manifest, atomically.

The directory is assembled under a hidden temporary name (``.<run_id>.<random>.tmp``, locked
by this process while it writes) and renamed into place when every file is written, so a crash
or an error leaves either a complete run or a hidden folder that no catalog reads and that the
next run removes (:func:`backtest.atomic.remove_stale_temporaries`). The rename is the run's
registration: catalogs are built from the run directories (:mod:`backtest.results.catalog`).

The manifest records what is needed to reproduce and audit the run: the run kind, the config
(verbatim and hashed), the window, the tape and book files with sha256, every policy's
parameters and file hash, package and dependency versions, timings and peak memory.

Every run kind writes through :func:`run_directory` (single-asset runs with :func:`write_run`,
portfolio runs with :mod:`backtest.portfolio.pipeline`), so every kind is written, made
visible and found by the catalog the same way.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from backtest.atomic import atomic_dir, remove_stale_temporaries
from backtest.kernels.enums import StepMetric
from backtest.provenance import engine_version, file_sha256, package_versions, peak_rss_mb
from backtest.results.metrics import SINGLE_ASSET
from backtest.results.tables import (
    accounts_parts,
    adl_table,
    liquidations_parts,
    policies_table,
    prices_table,
    steps_table,
)

#: Rows of the accounts and liquidations tables built and written at a time (one row group).
ROWS_PER_PART = 1 << 20


class RunFiles:
    """The files of a run directory being written (see :func:`run_directory`).

    Parameters
    ----------
    tmp : Path
        The temporary directory renamed into place when the run is complete.
    """

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._streams: dict[str, pq.ParquetWriter] = {}

    def table(self, name: str, frame: pl.DataFrame) -> None:
        """Write a whole table as ``<name>.parquet`` (zstd, with statistics)."""
        _write(self.tmp / f"{name}.parquet", frame)

    def append(self, name: str, frame: pl.DataFrame) -> None:
        """Append rows to ``<name>.parquet`` as a row group (the first call fixes the schema).

        For tables too large to hold whole in memory (one frame per policy, written as soon
        as that policy's simulation is done).

        Raises
        ------
        ValueError
            If ``frame``'s columns differ from the first frame's.
        """
        arrow = frame.to_arrow()
        writer = self._streams.get(name)
        if writer is None:
            writer = pq.ParquetWriter(self.tmp / f"{name}.parquet", arrow.schema,
                                      compression="zstd", write_statistics=True)
            self._streams[name] = writer
        elif arrow.schema.names != writer.schema.names:
            raise ValueError(f"table {name}: columns {arrow.schema.names} differ from "
                             f"{writer.schema.names}")
        writer.write_table(arrow.cast(writer.schema))

    def manifest(self, manifest: dict) -> None:
        """Write ``manifest.json`` (last: the run is complete once it is written)."""
        self.close()
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))

    def close(self) -> None:
        """Finish the appended tables."""
        for writer in self._streams.values():
            writer.close()
        self._streams.clear()


@contextlib.contextmanager
def run_directory(run_dir: Path) -> Iterator[RunFiles]:
    """Assemble a run directory of any kind under a temporary name; rename it when complete.

    Removes the temporaries killed runs left in the parent first. On an exception, or if no
    manifest was written, nothing appears at ``run_dir``.

    Parameters
    ----------
    run_dir : Path
        Destination directory (``<runs>/<run_id>`` or ``<runs>/<kind>/<run_id>``).

    Yields
    ------
    RunFiles

    Raises
    ------
    FileExistsError
        If ``run_dir`` exists.
    RuntimeError
        If the block ends without writing the manifest.
    """
    remove_stale_temporaries(run_dir.parent)  # left by killed runs
    with atomic_dir(run_dir) as tmp:
        files = RunFiles(tmp)
        try:
            yield files
        finally:
            files.close()
        if not (tmp / "manifest.json").is_file():
            raise RuntimeError(f"run directory {run_dir} was not given a manifest")


def write_run(run_dir: Path, run_id: str, created: datetime, inputs, outcomes, timings: dict,
              runtime: dict, t_start: float) -> Path:
    """Write all tables and the manifest of a run into ``run_dir`` (which must not exist).

    Parameters
    ----------
    run_dir : Path
        Destination directory.
    run_id : str
    created : datetime
        Run creation time (UTC).
    inputs : backtest.engine.run.Inputs
    outcomes : list of backtest.engine.run.PolicyOutcome
    timings : dict
        Seconds per phase, throughput; completed here with the write time.
    runtime : dict
        Python and platform description, peak RSS so far.
    t_start : float
        ``time.perf_counter()`` at the start of the run, for the total wall time.

    Returns
    -------
    Path
        ``run_dir``.

    Raises
    ------
    FileExistsError
        If ``run_dir`` exists (run ids are reserved by :func:`backtest.engine.run.execute`).
    """
    arrays = inputs.window.arrays()
    ts, close = arrays["timestamp"], arrays["close"]
    # each account's position once open: kept by the run (no second copy of the book's state)
    book = getattr(inputs, "book_state", None) or inputs.book.arrays()
    account_id = inputs.book.frame["account_id"].to_numpy()
    gas, gas_info = inputs.market.gas_usd, inputs.market.gas_info
    t0 = time.perf_counter()
    with run_directory(run_dir) as out:
        out.table("prices", prices_table(run_id, ts, arrays))
        out.table("steps", pl.concat(
            [steps_table(run_id, o.name, o.result, ts, close, arrays["low"], inputs.start_state,
                         gas, inputs.flow)
             for o in outcomes]))
        # the per-account and per-event tables are written in parts (row groups), so a
        # large run never holds one of them whole
        for o in outcomes:
            for part in accounts_parts(
                    run_id, o.name, o.result, account_id, book, arrays["open"][0], close[-1],
                    close[-1] * o.result.step_metrics[-1, StepMetric.PRICE_FACTOR],
                    inputs.flow, close, ROWS_PER_PART):
                out.append("accounts", part)
            for part in liquidations_parts(run_id, o.name, o.result, account_id, ts,
                                           ROWS_PER_PART):
                out.append("liquidations", part)
        out.table("adl", pl.concat(
            [adl_table(run_id, o.name, o.result, account_id, ts) for o in outcomes]))
        policy_rows = [(o.name, o.policy.model_dump(mode="json"), file_sha256(o.path))
                       for o in outcomes]
        out.table("policies", policies_table(run_id, policy_rows))
        timings = dict(timings, write_seconds=time.perf_counter() - t0,
                       total_seconds=time.perf_counter() - t_start)
        runtime = dict(runtime, peak_rss_mb=peak_rss_mb())
        manifest = _manifest(run_id, created, inputs, policy_rows, timings, runtime, file_sha256)
        manifest["keepers"]["gas"] = gas_info
        out.manifest(manifest)
    return run_dir


def _write(path: Path, frame: pl.DataFrame) -> None:
    frame.write_parquet(path, compression="zstd", statistics=True)


def _as_happened(inputs, sha) -> dict | None:
    """Return the as-happened policy of a counterfactual run: name, parameters, file hash."""
    if getattr(inputs, "as_happened", None) is None:
        return None
    policy, path = inputs.as_happened
    return {"name": policy.name, "parameters": policy.model_dump(mode="json"),
            "file_sha256": sha(path)}


def _manifest(run_id, created, inputs, policy_rows, timings, runtime, sha) -> dict:
    cfg = inputs.config
    window, tape = inputs.window, inputs.tape
    gaps = [{"start": g.start, "end": g.end, "missing_steps": g.missing_steps}
            for g in window.gaps()]
    return {
        "run_id": run_id,
        "run_kind": SINGLE_ASSET,
        "name": cfg.name,
        "description": cfg.description,
        "created_at": created.isoformat(),
        "command": " ".join(["liqbt run", str(inputs.config_path),
                             *(f"--set '{o}'" for o in inputs.overrides)]),
        "config": {
            "path": str(inputs.config_path),
            "sha256": sha(inputs.config_path),
            "overrides": inputs.overrides,
            "resolved": cfg.model_dump(mode="json"),
        },
        "symbol": inputs.symbol,
        "window": {
            "event": inputs.event,
            "start": inputs.start.isoformat(),
            "end": inputs.end.isoformat(),
            "steps": window.rows,
            "first_candle": window.start.isoformat(),
            "last_candle_end": window.end.isoformat(),
            "gaps": gaps,
        },
        "tape": {
            "path": str(tape.path),
            "sha256": sha(tape.path) if tape.path else None,
            "venue": tape.meta.venue,
            "market": tape.meta.market,
            "interval": tape.meta.interval,
            "sources": [getattr(s, "__dict__", str(s)) for s in tape.meta.sources],
        },
        "book": {
            "path": str(inputs.book.path),
            "sha256": sha(inputs.book.path),
            "accounts": len(inputs.book),
            "meta": inputs.book.meta,
            "products": (getattr(inputs, "book_products", None)
                         or _counts(inputs.book.frame, "product")),
        },
        "policies": [{"name": n, "parameters": p, "file_sha256": h} for n, p, h in policy_rows],
        "execution": cfg.execution.model_dump(),
        "market": {**cfg.market.model_dump(), "depth": inputs.market.depth_info,
                   "as_happened": _as_happened(inputs, sha)},
        "oracle": cfg.oracle.model_dump(),
        "keepers": cfg.keepers.model_dump(mode="json"),
        "insurance_fund": cfg.insurance_fund.model_dump(),
        "versions": package_versions(),
        "code": engine_version(),
        "runtime": runtime,
        "timings": timings,
    }


def _counts(frame: pl.DataFrame, column: str) -> dict:
    return {str(k): int(v) for k, v in frame[column].value_counts().iter_rows()}

