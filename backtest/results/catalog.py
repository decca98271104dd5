"""The DuckDB catalog of runs: one SQL query spans every run's Parquet tables.

Layout under the runs directory (:func:`backtest.paths.runs_dir`)::

    runs/
      catalog.duckdb                 # table ``runs`` (one row per registered run)
      <run_id>/manifest.json         # config, seeds, input hashes, versions, timings
      <run_id>/{prices,steps,accounts,liquidations,adl,policies}.parquet

Run directories appear atomically (written under a temporary name, then renamed), so a run
directory with a manifest is complete. Opening the catalog registers any complete run
directory it does not know yet (e.g. after a crash between the rename and the insert) and
exposes views ``prices``, ``steps``, ``accounts``, ``liquidations``, ``adl``, ``policies`` over the
registered runs' files, plus ``runs``. Sweeps (:mod:`backtest.sweep`) are registered in the
``sweeps`` table; the views ``sweep_cells`` and ``sweep_steps`` span their finished cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from backtest import paths
from backtest.errors import CatalogError
from backtest.results.metrics import ACCOUNTS_AGGREGATES, METRICS, STEPS_AGGREGATES

CATALOG_FILE = "catalog.duckdb"
TABLES = ("prices", "steps", "accounts", "liquidations", "adl", "policies")

_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    created_at TIMESTAMPTZ,
    event VARCHAR,
    symbol VARCHAR,
    window_start TIMESTAMPTZ,
    window_end TIMESTAMPTZ,
    tape_interval VARCHAR,
    steps BIGINT,
    accounts BIGINT,
    policies VARCHAR[],
    package_version VARCHAR,
    run_dir VARCHAR
)
"""

_SWEEPS_DDL = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_dir VARCHAR PRIMARY KEY,
    sweep_id VARCHAR,
    name VARCHAR,
    created_at TIMESTAMPTZ,
    cells BIGINT,
    package_version VARCHAR
)
"""

SWEEP_VIEWS = {"sweep_cells": "summary.parquet", "sweep_steps": "steps.parquet"}
"""Views over every registered sweep's finished cells: one row per cell (coordinates and
metrics), and one row per cell and step. Both carry ``sweep_id`` and ``cell_id``; only cells
of each sweep's current plan are shown."""

SWEEP_GLOBS = ("sweeps/*/sweep.json", "governance/*/sweep.json")
"""Where :meth:`Catalog.sync` looks for sweep directories under the runs directory."""


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class Catalog:
    """Connection to the runs catalog, with views over every registered run.

    Parameters
    ----------
    root : str or Path, optional
        Runs directory (default :func:`backtest.paths.runs_dir`).
    read_only : bool
        Open without registering new runs (for concurrent readers).

    Raises
    ------
    CatalogError
        If the runs directory does not exist (read-only) or the database cannot be opened.
    """

    def __init__(self, root: str | Path | None = None, read_only: bool = False):
        self.root = paths.runs_dir(root)
        db = self.root / CATALOG_FILE
        if read_only and not db.exists():
            raise CatalogError(f"no run catalog at {db}: run `liqbt run CONFIG` first")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(db), read_only=read_only)
        except duckdb.Error as exc:
            raise CatalogError(f"cannot open the run catalog: {exc}", db) from None
        if not read_only:
            self._exec(_RUNS_DDL)
            self._exec(_SWEEPS_DDL)
            self.sync()
        self._create_views()

    def _exec(self, sql: str, params: list | None = None) -> list:
        # DuckDB 2 requires each statement's result to be consumed before the next one
        return self.con.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the database connection."""
        self.con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, run_dir: str | Path) -> str:
        """Register a complete run directory; return its run id (idempotent).

        Raises
        ------
        CatalogError
            If the directory has no readable manifest.
        """
        run_dir = Path(run_dir).resolve()
        try:
            m = json.loads((run_dir / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise CatalogError(f"not a complete run directory ({exc})", run_dir) from None
        self._exec(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                m["run_id"], m["name"], m["created_at"], m["window"].get("event"),
                m["symbol"], m["window"]["start"], m["window"]["end"],
                m["tape"]["interval"], m["window"]["steps"], m["book"]["accounts"],
                [p["name"] for p in m["policies"]], m["versions"]["liqbt"], str(run_dir),
            ],
        )
        self._create_views()
        return m["run_id"]

    def sync(self) -> None:
        """Register complete run directories missing from the catalog; forget deleted ones."""
        known = dict(self._exec("SELECT run_id, run_dir FROM runs"))
        for run_id, run_dir in known.items():
            if not (Path(run_dir) / "manifest.json").exists():
                self._exec("DELETE FROM runs WHERE run_id = ?", [run_id])
        for manifest in sorted(self.root.glob("*/manifest.json")):
            if manifest.parent.name not in known:
                self.register(manifest.parent)
        sweeps = {r[0] for r in self._exec("SELECT sweep_dir FROM sweeps")}
        for sweep_dir in sweeps:
            if not (Path(sweep_dir) / "sweep.json").exists():
                self._exec("DELETE FROM sweeps WHERE sweep_dir = ?", [sweep_dir])
        for pattern in SWEEP_GLOBS:
            for manifest in sorted(self.root.glob(pattern)):
                if str(manifest.parent.resolve()) not in sweeps:
                    self.register_sweep(manifest.parent)

    def register_sweep(self, sweep_dir: str | Path) -> str:
        """Register (or refresh) a sweep directory; return its sweep id.

        Raises
        ------
        CatalogError
            If the directory has no readable ``sweep.json``.
        """
        sweep_dir = Path(sweep_dir).resolve()
        try:
            m = json.loads((sweep_dir / "sweep.json").read_text())
        except (OSError, ValueError) as exc:
            raise CatalogError(f"not a sweep directory ({exc})", sweep_dir) from None
        self._exec("INSERT OR REPLACE INTO sweeps VALUES (?, ?, ?, ?, ?, ?)",
                   [str(sweep_dir), m["sweep_id"], m["name"], m["created_at"], m["cells"],
                    m.get("engine", {}).get("liqbt")])
        self._create_views()
        return m["sweep_id"]

    def _sweep_views(self) -> None:
        has = self._exec("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'sweeps'")
        rows = self._exec("SELECT sweep_id, sweep_dir FROM sweeps ORDER BY sweep_id") \
            if has[0][0] else []
        for view, file in SWEEP_VIEWS.items():
            parts = []
            for sweep_id, sweep_dir in rows:
                d = Path(sweep_dir)
                if not (d / "plan.parquet").exists() or not any(d.glob(f"cells/*/{file}")):
                    continue
                parts.append(
                    f"SELECT {_sql_str(sweep_id)} AS sweep_id, c.* FROM read_parquet("
                    f"{_sql_str(str(d / 'cells' / '*' / file))}, union_by_name = true) c "
                    f"WHERE c.cell_id IN (SELECT cell_id FROM read_parquet("
                    f"{_sql_str(str(d / 'plan.parquet'))}))")
            body = (" UNION ALL BY NAME ".join(parts) if parts else
                    "SELECT NULL::VARCHAR AS sweep_id, NULL::VARCHAR AS cell_id WHERE false")
            self._exec(f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")

    def _create_views(self) -> None:
        dirs = [r[0] for r in self._exec("SELECT run_dir FROM runs ORDER BY run_id")]
        for table in TABLES:
            files = [str(Path(d) / f"{table}.parquet") for d in dirs]
            files = [f for f in files if Path(f).exists()]
            if files:
                body = f"SELECT * FROM read_parquet({files!r}, union_by_name = true)"
            else:
                body = "SELECT NULL::VARCHAR AS run_id WHERE false"
            self._exec(f"CREATE OR REPLACE TEMP VIEW {table} AS {body}")
        self._sweep_views()

    def query(self, sql: str) -> pl.DataFrame:
        """Run SQL against the catalog and return the result.

        Raises
        ------
        CatalogError
            On an SQL error (the message is DuckDB's).
        """
        try:
            rel = self.con.sql(sql)
            return pl.DataFrame() if rel is None else rel.pl()
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {exc}") from None

    def run_ids(self) -> list[str]:
        """Return registered run ids, oldest first."""
        return [r[0] for r in self._exec("SELECT run_id FROM runs ORDER BY run_id")]

    def resolve(self, run: str) -> str:
        """Return the run id matching ``run`` (an id, a unique prefix, ``latest``, or a path).

        Raises
        ------
        CatalogError
            If nothing or more than one run matches.
        """
        ids = self.run_ids()
        if run == "latest" and ids:
            return ids[-1]
        if Path(run).is_dir() and (Path(run) / "manifest.json").exists():
            return self.register(run)
        matches = [i for i in ids if i == run] or [i for i in ids if i.startswith(run)]
        if len(matches) != 1:
            known = ", ".join(ids[-5:]) or "none"
            what = "no run" if not matches else f"{len(matches)} runs"
            raise CatalogError(f"{what} matching '{run}' (latest runs: {known})")
        return matches[0]

    def manifest(self, run_id: str) -> dict:
        """Return the manifest of a registered run."""
        rows = self._exec("SELECT run_dir FROM runs WHERE run_id = ?", [run_id])
        if not rows:
            raise CatalogError(f"run {run_id} is not in the catalog")
        (run_dir,) = rows[0]
        return json.loads((Path(run_dir) / "manifest.json").read_text())

    def summary(self, run_id: str) -> pl.DataFrame:
        """Return one row per policy of ``run_id`` with every metric of the registry.

        Columns: ``policy``, ``family``, each :data:`METRICS` name, and
        ``equity_vs_hard`` (final user equity relative to the run's first hard policy, minus 1;
        null if the run has none). Policies keep the config's order.
        """
        cols = ",\n".join(f"{m.sql} AS {m.name}" for m in METRICS)
        sql = f"""
            WITH s AS (SELECT policy, {STEPS_AGGREGATES} FROM steps WHERE run_id = $run
                       GROUP BY policy),
                 a AS (SELECT policy, {ACCOUNTS_AGGREGATES} FROM accounts WHERE run_id = $run
                       GROUP BY policy),
                 p AS (SELECT policy, family, row_number() OVER () AS ord FROM policies
                       WHERE run_id = $run),
                 base AS (SELECT a.final_equity_usd AS hard_equity FROM a JOIN p USING (policy)
                          WHERE p.family = 'hard' ORDER BY p.ord LIMIT 1)
            SELECT p.policy, p.family, {cols},
                   a.final_equity_usd / (SELECT hard_equity FROM base) - 1 AS equity_vs_hard
            FROM p JOIN s USING (policy) JOIN a USING (policy)
            ORDER BY p.ord
        """
        try:
            return self.con.sql(sql, params={"run": run_id}).pl()
        except duckdb.Error as exc:
            raise CatalogError(f"summary of run {run_id} failed: {exc}") from None
