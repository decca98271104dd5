"""The run results as one read-only SQL database: the run directories are the catalog.

Design
------
Nothing is shared but files that are written once and renamed into place, so any number of
``liqbt run``, sweeps, queries and reports can work at once, on one machine or on a shared
filesystem, and none ever waits on (or fails at) another's lock:

- a run is registered by existing: :func:`backtest.results.writer.run_directory` assembles it
  under a hidden temporary name and renames it to ``<runs>/<run_id>/`` (portfolio runs:
  ``<runs>/portfolio/<run_id>/``) once its manifest is written;
- a sweep under ``<runs>/sweeps/`` or ``<runs>/governance/`` is found by its ``sweep.json``;
  a sweep written elsewhere leaves a one-line pointer file in ``<runs>/registered-sweeps/``
  (:func:`register_sweep`, written atomically, one file per directory, idempotent);
- every :class:`Catalog` opens a private in-memory DuckDB, scans the directories once, and
  creates the tables ``runs`` and ``sweeps`` and views over the Parquet files it found. A run
  that finished before the catalog was opened is always in it; one that finishes later is in
  the next catalog (or after :meth:`Catalog.refresh`).

Layout under the runs directory (:func:`backtest.paths.runs_dir`)::

    runs/
      <run_id>/manifest.json             # config, seeds, input hashes, versions, timings
      <run_id>/{prices,steps,accounts,liquidations,adl,policies}.parquet
      portfolio/<run_id>/manifest.json   # a portfolio run (run_kind = 'portfolio')
      portfolio/<run_id>/{prices,steps,accounts,liquidations,policies}.parquet  # + its own
      options/<run_id>-options/{steps,accounts,liquidations,policies}.parquet  # its options
      .<run_id>.<random>.tmp/            # a run being written (never read; see writer)
      sweeps/<name>/, governance/<proposal>/   # sweep directories (backtest.sweep.store)
      registered-sweeps/<digest>.json    # {"sweep_dir": ...} for sweeps written elsewhere

Relations (:data:`RELATIONS`): ``runs`` (one row per run), ``prices``, ``steps``,
``accounts``, ``liquidations``, ``adl``, ``policies`` (every run's tables, ``run_id`` and
``run_kind`` in each: ``single_asset``, ``portfolio`` or ``options``, see
:data:`backtest.results.metrics.RUN_KINDS`; a portfolio run has no ``adl`` table and adds
``symbol``, ``collateral_order`` and ``account_kind`` columns),
``sweeps`` (one row per sweep directory), ``sweep_cells`` and ``sweep_steps`` (the finished
cells of each sweep's current plan, ``sweep_id``, ``sweep_dir`` and ``cell_id`` in each;
``member`` and ``member_inputs`` for ensemble members), ``sweep_intervals`` (p5 / p50 / p95 of
every metric across ensemble members, :data:`INTERVALS_VIEW`).

Read-only by construction
-------------------------
After the views are created the connection is closed to everything but the run results with
DuckDB's own settings (https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview):
``allowed_paths`` lists exactly the Parquet files of the views, ``enable_external_access =
false`` refuses every other file (``read_text``, ``read_csv``, ``COPY``, ``ATTACH``, ``EXPORT``,
``INSTALL``/``LOAD``), extension auto-install and auto-load are off, spilling to a temporary
directory is off, and ``lock_configuration = true`` refuses any ``SET`` that would undo this.
:meth:`Catalog.query` runs only ``SELECT`` statements (``SHOW``, ``DESCRIBE``, ``SUMMARIZE``,
``PIVOT`` are ``SELECT`` statements), as classified by DuckDB's parser
(``DuckDBPyConnection.extract_statements``); anything else (DDL, DML, ``COPY``, ``ATTACH``,
``SET``, ``PRAGMA``, ``CALL``, ``EXPLAIN``) is refused with a message naming it. The database
lives in memory and is discarded on close, so nothing a query does outlives it.

Why over 400 lines: it is the catalog's one class (DuckDB views over run directories, sweep
registration, summaries), whose queries share one connection and the view definitions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from backtest import paths
from backtest.atomic import atomic_path
from backtest.errors import CatalogError
from backtest.results.metrics import METRICS, SINGLE_ASSET, aggregates_sql
from backtest.results.runs import RUN_KIND_DIRS

TABLES = ("prices", "steps", "accounts", "liquidations", "adl", "policies")
"""Per-run Parquet tables, each exposed as a view of the same name over every run."""

SWEEP_VIEWS = {"sweep_cells": "summary.parquet", "sweep_steps": "steps.parquet"}
"""Views over every sweep's finished cells: one row per cell (coordinates and metrics), and
one row per cell and step. Both carry ``sweep_id``, ``sweep_dir`` and ``cell_id``; only cells
of each sweep's current plan are shown."""

INTERVALS_VIEW = "sweep_intervals"
"""View of p5 / p50 / p95 of every metric across the ensemble members of each (sweep, event,
policy, parameter set, stress): columns ``sweep_id``, ``sweep_dir``, ``event``, ``policy``,
``param_set``, ``stress``, ``metric``, ``members``, ``p5``, ``p50``, ``p95``, ``mean``, ``min``,
``max`` (:mod:`backtest.results.intervals`)."""

RELATIONS = ("runs", *TABLES, "sweeps", *SWEEP_VIEWS, INTERVALS_VIEW)
"""Every table and view a query can read (``SHOW TABLES`` lists exactly these)."""

SWEEP_GLOBS = ("sweeps/*/sweep.json", "governance/*/sweep.json")
"""Where sweep directories are found under the runs directory."""

REGISTERED_SWEEPS = "registered-sweeps"
"""Folder of the runs directory holding pointers to sweeps written elsewhere."""

LATER_COLUMNS = {"accounts": {"final_equity_historical_usd": "DOUBLE", "cure_usd": "DOUBLE",
                              "cure_units": "DOUBLE"}}
"""Columns added to a table after runs were first written, with their DuckDB types: the
catalog's views carry them whatever the runs it holds, null in older runs' rows (the metrics
registry says how each is read there)."""

READ_ONLY_STATEMENTS = ("SELECT",)
"""Statement types (``duckdb.StatementType`` names) :meth:`Catalog.query` runs."""

_RUNS_COLUMNS = {
    "run_id": "VARCHAR", "run_kind": "VARCHAR", "name": "VARCHAR", "created_at": "TIMESTAMPTZ",
    "event": "VARCHAR",
    "symbol": "VARCHAR", "window_start": "TIMESTAMPTZ", "window_end": "TIMESTAMPTZ",
    "tape_interval": "VARCHAR", "steps": "BIGINT", "accounts": "BIGINT",
    "policies": "VARCHAR[]", "package_version": "VARCHAR", "run_dir": "VARCHAR",
}
_SWEEPS_COLUMNS = {
    "sweep_id": "VARCHAR", "sweep_dir": "VARCHAR", "name": "VARCHAR",
    "created_at": "TIMESTAMPTZ", "cells": "BIGINT", "cells_done": "BIGINT",
    "package_version": "VARCHAR",
}


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def is_temporary(path: Path) -> bool:
    """Tell whether a directory entry is a temporary (hidden) one, never read as a run."""
    return path.name.startswith(".")


@dataclass
class RunEntry:
    """A complete run directory and the ``runs`` row built from its manifest."""

    run_id: str
    run_dir: Path
    row: tuple
    kind: str = SINGLE_ASSET


@dataclass
class SweepEntry:
    """A sweep directory, its manifest, and the finished cells of its current plan.

    ``files`` maps each view of :data:`SWEEP_VIEWS` to the cell files it reads.
    """

    sweep_dir: Path
    manifest: dict
    files: dict[str, list[Path]] = field(default_factory=dict)
    sweep_id: str = ""


def read_run(run_dir: str | Path) -> RunEntry:
    """Read a run directory's manifest into a :class:`RunEntry`.

    Raises
    ------
    CatalogError
        If the directory has no readable, complete manifest.
    """
    run_dir = Path(run_dir).resolve()
    m = None
    try:
        m = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        kind = m.get("run_kind", SINGLE_ASSET)
        row = (m["run_id"], kind, m["name"], m["created_at"], m["window"].get("event"),
               m["symbol"], m["window"]["start"], m["window"]["end"], m["tape"]["interval"],
               m["window"]["steps"], m["book"]["accounts"], [p["name"] for p in m["policies"]],
               m["versions"]["liqbt"], str(run_dir))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(m, dict) and "portfolio_book" in m and "run_kind" not in m:
            raise CatalogError("a portfolio run written before portfolio runs were catalogued "
                               "(no run_kind, no catalog tables): run its config again to "
                               "query it", run_dir) from None
        raise CatalogError(f"not a complete run directory ({type(exc).__name__}: {exc})",
                           run_dir) from None
    return RunEntry(m["run_id"], run_dir, row, kind)


def scan_runs(root: Path) -> tuple[list[RunEntry], list[str]]:
    """Return the complete run directories of every kind under ``root``, by run id.

    Single-asset runs are directly under ``root``, other kinds in their folder
    (:data:`backtest.results.runs.RUN_KIND_DIRS`). Hidden entries (temporary directories of
    runs being written, or of killed runs) are never read. A directory whose manifest cannot
    be read is left out and described in the second list.
    """
    runs, problems = [], []
    if not root.is_dir():
        return runs, problems
    dirs = [d for sub in RUN_KIND_DIRS.values() if (root / sub).is_dir()
            for d in sorted((root / sub).iterdir())]
    for d in dirs:
        if is_temporary(d) or not d.is_dir() or not (d / "manifest.json").is_file():
            continue
        try:
            runs.append(read_run(d))
        except CatalogError as exc:
            problems.append(str(exc))
    runs.sort(key=lambda r: r.run_id)
    return runs, problems


def _is_run_dir(run: str | Path) -> bool:
    return Path(run).is_dir() and (Path(run) / "manifest.json").is_file()


def _match(run: str, ids: list[str], root: Path) -> str:
    """Return the one id of ``ids`` (oldest first) that ``run`` names.

    That is ``run`` itself, the newest for ``latest``, or the one starting with ``run``; else
    raise :class:`CatalogError` naming the latest ids.
    """
    if run == "latest" and ids:
        return ids[-1]
    matches = [i for i in ids if i == run] or [i for i in ids if i.startswith(run)]
    if len(matches) != 1:
        known = ", ".join(ids[-5:]) or "none"
        what = "no run" if not matches else f"{len(matches)} runs"
        raise CatalogError(f"{what} matching '{run}' in {root} (latest runs: {known})")
    return matches[0]


def find_run(run: str | Path, root: str | Path | None = None) -> RunEntry:
    """Find the run that ``run`` names from the manifests alone, opening no result table.

    What :meth:`Catalog.resolve` accepts is accepted here, so a command about one run can open
    :meth:`Catalog.of_run`, whose cost does not grow with the runs kept beside it.

    Parameters
    ----------
    run : str or Path
        Run id, unique prefix of one, ``latest`` (the newest id), or a run directory (inside
        the runs directory or not).
    root : str or Path, optional
        Runs directory (default ``$LIQBT_RUNS``, else ``runs``).

    Returns
    -------
    RunEntry

    Raises
    ------
    CatalogError
        If nothing or more than one run matches, or the directory's manifest cannot be read.
    """
    if _is_run_dir(run):
        return read_run(run)
    root = paths.runs_dir(root)
    entries = {e.run_id: e for e in scan_runs(root)[0]}
    return entries[_match(str(run), list(entries), root)]


def _pointer_name(sweep_dir: Path) -> str:
    return hashlib.sha256(str(sweep_dir).encode()).hexdigest()[:16] + ".json"


def register_sweep(sweep_dir: str | Path, runs: str | Path | None = None) -> Path | None:
    """Make a sweep directory visible to catalogs of the runs directory ``runs``.

    A sweep under ``<runs>/sweeps/`` or ``<runs>/governance/`` is found without registering;
    any other gets a pointer file ``<runs>/registered-sweeps/<digest>.json`` (written
    atomically; registering twice writes the same file). No lock is taken.

    Parameters
    ----------
    sweep_dir : str or Path
        Directory holding ``sweep.json``.
    runs : str or Path, optional
        Runs directory (default :func:`backtest.paths.runs_dir`).

    Returns
    -------
    Path or None
        The pointer file written, or None when none is needed.

    Raises
    ------
    CatalogError
        If the directory holds no sweep manifest.
    """
    sweep_dir = Path(sweep_dir).resolve()
    if not (sweep_dir / "sweep.json").is_file():
        raise CatalogError("not a sweep directory (no sweep.json)", sweep_dir)
    root = paths.runs_dir(runs).resolve()
    if any(sweep_dir / "sweep.json" in set(root.glob(g)) for g in SWEEP_GLOBS):
        return None
    pointer = root / REGISTERED_SWEEPS / _pointer_name(sweep_dir)
    with atomic_path(pointer) as tmp:
        tmp.write_text(json.dumps({"sweep_dir": str(sweep_dir)}) + "\n")
    return pointer


def _sweep_dirs(root: Path) -> list[Path]:
    found = []
    for pattern in SWEEP_GLOBS:
        found += [m.parent.resolve() for m in root.glob(pattern)]
    reg = root / REGISTERED_SWEEPS
    if reg.is_dir():
        for pointer in sorted(reg.glob("*.json")):
            try:
                d = Path(json.loads(pointer.read_text(encoding="utf-8"))["sweep_dir"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if (d / "sweep.json").is_file():
                found.append(d.resolve())
    return sorted(set(found))


def read_sweep(sweep_dir: Path) -> SweepEntry:
    """Read a sweep directory: its manifest and the cell files of its current plan.

    Raises
    ------
    CatalogError
        If ``sweep.json`` or ``plan.parquet`` cannot be read.
    """
    try:
        manifest = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
        manifest["sweep_id"]  # noqa: B018 - required
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatalogError(f"not a sweep directory ({type(exc).__name__}: {exc})",
                           sweep_dir) from None
    planned: list[str] = []
    if (sweep_dir / "plan.parquet").is_file():
        try:
            planned = pl.read_parquet(sweep_dir / "plan.parquet", columns=["cell_id"])[
                "cell_id"].to_list()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise CatalogError(f"unreadable plan.parquet ({exc})", sweep_dir) from None
    cells = sweep_dir / "cells"
    files = {view: [cells / c / name for c in sorted(planned) if (cells / c / name).is_file()]
             for view, name in SWEEP_VIEWS.items()}
    return SweepEntry(sweep_dir, manifest, files)


def scan_sweeps(root: Path) -> tuple[list[SweepEntry], list[str]]:
    """Return every sweep of the runs directory ``root`` with a catalog-wide unique id.

    A sweep id is ``<name>-<digest of the plan>``: the same sweep written into two directories
    has the same id. Each such directory is then told apart as ``<sweep_id>@<digest of its
    path>`` (the ``sweep_dir`` column names it too), so its rows are never merged with the
    other copy's.
    """
    sweeps, problems = [], []
    for d in _sweep_dirs(root):
        try:
            sweeps.append(read_sweep(d))
        except CatalogError as exc:
            problems.append(str(exc))
    counts: dict[str, int] = {}
    for s in sweeps:
        counts[s.manifest["sweep_id"]] = counts.get(s.manifest["sweep_id"], 0) + 1
    for s in sweeps:
        sid = s.manifest["sweep_id"]
        s.sweep_id = sid if counts[sid] == 1 else \
            f"{sid}@{hashlib.sha256(str(s.sweep_dir).encode()).hexdigest()[:6]}"
    sweeps.sort(key=lambda s: (s.sweep_id, str(s.sweep_dir)))
    return sweeps, problems


class Catalog:
    """Every run and sweep of a runs directory as one read-only, in-memory DuckDB database.

    See the module docstring for the design. Opening never writes and never waits; the
    database reflects the directories as they were when it was opened (or last refreshed).

    Parameters
    ----------
    root : str or Path, optional
        Runs directory (default :func:`backtest.paths.runs_dir`). A missing directory gives
        an empty catalog.
    read_only : bool
        Accepted for compatibility; every catalog is read-only.
    sweeps : list of str or Path, optional
        Hold only these sweep directories (found in the runs directory or registered in it),
        under the ids the whole runs directory gives them: what a report on one sweep reads,
        at a cost that grows little with everything else kept under ``root`` (the example
        governance report, its cells reused, in a runs directory of 4.6 GB: 67 s and 1.1 GB
        over the whole catalog, 29 s and 0.68 GB over its sweep; 24 s and 0.56 GB in a
        directory holding only that sweep).
    run_ids : list of str, optional
        Hold only these runs of the runs directory (what a run's own report reads).
        With either ``sweeps`` or ``run_ids`` given, the catalog holds what they name and
        nothing else (no runs when only ``sweeps`` is given, and the reverse); both None:
        everything.

    Attributes
    ----------
    root : Path
    problems : list of str
        Run or sweep directories left out because they could not be read.

    Raises
    ------
    CatalogError
        If the runs directory exists but is not a directory.
    """

    def __init__(self, root: str | Path | None = None, read_only: bool = True,
                 sweeps: list[str | Path] | None = None, run_ids: list[str] | None = None):
        self.root = paths.runs_dir(root)
        if self.root.exists() and not self.root.is_dir():
            raise CatalogError("the runs directory is a file, not a directory", self.root)
        scoped = sweeps is not None or run_ids is not None
        self._only = {Path(d).resolve() for d in sweeps or ()} if scoped else None
        self._only_runs = set(run_ids or ()) if scoped else None
        self._extra: dict[str, RunEntry] = {}
        self.con: duckdb.DuckDBPyConnection | None = None
        self.refresh()

    @classmethod
    def of_run(cls, entry: RunEntry, root: str | Path | None = None) -> Catalog:
        """Open a catalog holding only the run of ``entry`` (found by :func:`find_run`).

        Its time and memory do not grow with the other runs and sweeps kept in ``root``. A
        run directory outside ``root`` is registered (:meth:`register`); it is the one shown
        even where ``root`` keeps a run of the same id.

        Raises
        ------
        CatalogError
            As :class:`Catalog`.
        """
        root = paths.runs_dir(root)
        inside = entry.run_dir.parent in {(root / d).resolve() for d in RUN_KIND_DIRS.values()}
        catalog = cls(root, run_ids=[entry.run_id] if inside else [])
        if not inside:
            catalog.register(entry.run_dir)
        return catalog

    # ------------------------------------------------------------------ building

    def refresh(self) -> None:
        """Rescan the runs directory and rebuild the database (runs finished since appear).

        Raises
        ------
        CatalogError
            If the files keep changing under the scan (deleted while being opened).
        """
        for attempt in range(3):  # a run directory deleted between the scan and the views
            try:
                self._scan()
                self._open()
                return
            except duckdb.IOException as exc:
                if attempt == 2:
                    raise CatalogError(f"cannot open the run results: {exc}", self.root) \
                        from None

    def _scan(self) -> None:
        runs, problems = scan_runs(self.root) if self._only_runs != set() else ([], [])
        sweeps, sweep_problems = scan_sweeps(self.root.resolve()) \
            if self.root.is_dir() and self._only != set() else ([], [])
        if self._only is not None:  # ids as the whole directory gives them, then only these
            sweeps = [s for s in sweeps if s.sweep_dir in self._only]
            runs = [r for r in runs if r.run_id in self._only_runs]
        by_id = {r.run_id: r for r in runs}
        for run_id, entry in self._extra.items():
            by_id.setdefault(run_id, entry)
        self._runs = [by_id[k] for k in sorted(by_id)]
        self._sweeps = sweeps
        self.problems = problems + sweep_problems

    def _open(self) -> None:
        if self.con is not None:
            self.con.close()
        con = duckdb.connect(":memory:")
        self.con = con
        allowed: list[str] = []
        con.execute(f"CREATE TABLE runs ({_columns(_RUNS_COLUMNS)})")
        if self._runs:
            con.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * len(_RUNS_COLUMNS))})",
                            [r.row for r in self._runs])
        for table in TABLES:
            parts = []
            for kind in sorted({r.kind for r in self._runs}):
                files = [str(r.run_dir / f"{table}.parquet") for r in self._runs
                         if r.kind == kind]
                files = [f for f in files if Path(f).is_file()]
                if not files:
                    continue
                allowed += files
                parts.append(f"SELECT run_id, {_sql_str(kind)} AS run_kind, * EXCLUDE (run_id) "
                             f"FROM read_parquet([{', '.join(map(_sql_str, files))}], "
                             "union_by_name = true)")
            if parts and table in LATER_COLUMNS:  # null in runs written before they existed
                parts.append("SELECT " + ", ".join(
                    f"NULL::{kind} AS {name}" for name, kind in LATER_COLUMNS[table].items())
                    + " WHERE false")
            body = (" UNION ALL BY NAME ".join(parts) if parts else
                    "SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS run_kind WHERE false")
            con.execute(f"CREATE VIEW {table} AS {body}")
        con.execute(f"CREATE TABLE sweeps ({_columns(_SWEEPS_COLUMNS)})")
        if self._sweeps:
            con.executemany(
                f"INSERT INTO sweeps VALUES ({', '.join('?' * len(_SWEEPS_COLUMNS))})",
                [(s.sweep_id, str(s.sweep_dir), s.manifest.get("name"),
                  s.manifest.get("created_at"), s.manifest.get("cells"),
                  len(s.files["sweep_cells"]), s.manifest.get("engine", {}).get("liqbt"))
                 for s in self._sweeps])
        for view in SWEEP_VIEWS:
            parts = []
            for s in self._sweeps:
                files = [str(f) for f in s.files[view]]
                if not files:
                    continue
                allowed += files
                parts.append(
                    f"SELECT {_sql_str(s.sweep_id)} AS sweep_id, "
                    f"{_sql_str(str(s.sweep_dir))} AS sweep_dir, c.* FROM read_parquet("
                    f"[{', '.join(map(_sql_str, files))}], union_by_name = true) c")
            body = (" UNION ALL BY NAME ".join(parts) if parts else
                    "SELECT NULL::VARCHAR AS sweep_id, NULL::VARCHAR AS sweep_dir, "
                    "NULL::VARCHAR AS cell_id WHERE false")
            con.execute(f"CREATE VIEW {view} AS {body}")
        self._create_intervals_view()
        self._lock_down(allowed)

    def _create_intervals_view(self) -> None:
        """Create ``sweep_intervals``: p5 / p50 / p95 across ensemble members.

        One row per (sweep, event, policy, parameter set, stress, metric) over the cells with
        ``member >= 0`` (:mod:`backtest.results.intervals`).
        """
        from backtest.results.intervals import GROUP, intervals_sql

        columns = [r[0] for r in self.con.execute("DESCRIBE sweep_cells").fetchall()]
        keys = ("sweep_id", "sweep_dir", *GROUP)
        if not all(k in columns for k in keys):
            columns = []
        self.con.execute(f"CREATE VIEW {INTERVALS_VIEW} AS "
                         f"{intervals_sql('sweep_cells', columns, keys)}")

    def _lock_down(self, allowed: list[str]) -> None:
        con = self.con
        con.execute("SET allowed_paths = $1", [allowed])
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET temp_directory = ''")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def close(self) -> None:
        """Close the database (nothing is written: it lives in memory)."""
        if self.con is not None:
            self.con.close()
            self.con = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, run_dir: str | Path) -> str:
        """Add a run directory (e.g. one outside the runs directory) to this catalog.

        Runs inside the runs directory need no registering; this one is shown until the
        catalog is closed. Returns its run id.

        Raises
        ------
        CatalogError
            If the directory has no readable manifest.
        """
        entry = read_run(run_dir)
        if all(r.run_dir != entry.run_dir for r in self._runs):
            self._extra[entry.run_id] = entry
            self.refresh()
        return entry.run_id

    def register_sweep(self, sweep_dir: str | Path) -> str:
        """Register a sweep directory (:func:`register_sweep`), refresh; return its sweep id.

        Raises
        ------
        CatalogError
            If the directory has no readable ``sweep.json``.
        """
        register_sweep(sweep_dir, self.root)
        self.refresh()
        return self.sweep_id(sweep_dir)

    def sweep_id(self, sweep_dir: str | Path) -> str:
        """Return the catalog's ``sweep_id`` of a sweep directory (see :func:`scan_sweeps`).

        Raises
        ------
        CatalogError
            If the directory is not in the catalog.
        """
        d = Path(sweep_dir).resolve()
        for s in self._sweeps:
            if s.sweep_dir == d:
                return s.sweep_id
        raise CatalogError("this sweep is not in the catalog of " + str(self.root), d)

    # ------------------------------------------------------------------ reading

    def query(self, sql: str) -> pl.DataFrame:
        """Run read-only SQL against the catalog and return the result.

        Parameters
        ----------
        sql : str
            One or more ``SELECT`` statements (the last one's rows are returned).

        Raises
        ------
        CatalogError
            For a statement other than ``SELECT``, an access outside the run results, or any
            SQL error (the message is DuckDB's).
        """
        self.check_read_only(sql)
        try:
            rel = self.con.sql(sql)
            return pl.DataFrame() if rel is None else _to_polars(rel)
        except duckdb.PermissionException as exc:
            raise CatalogError(f"query refused: only the run results can be read "
                               f"({', '.join(RELATIONS)}); DuckDB: {exc}") from None
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {exc}") from None

    def check_read_only(self, sql: str) -> None:
        """Refuse SQL holding any statement but ``SELECT`` (classified by DuckDB's parser).

        Raises
        ------
        CatalogError
            Naming the refused statement type, or DuckDB's parser error.
        """
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {exc}") from None
        if not statements:
            raise CatalogError("query failed: the SQL holds no statement")
        for st in statements:
            kind = st.type.name
            if kind not in READ_ONLY_STATEMENTS:
                raise CatalogError(
                    f"query refused: {kind} statements are not allowed; the run results are "
                    f"read-only and only SELECT (with SHOW, DESCRIBE, SUMMARIZE) runs here "
                    f"(tables: {', '.join(RELATIONS)})")

    def run_ids(self) -> list[str]:
        """Return the run ids in the catalog, oldest first."""
        return [r.run_id for r in self._runs]

    def resolve(self, run: str) -> str:
        """Return the run id matching ``run`` (an id, a unique prefix, ``latest``, or a path).

        Raises
        ------
        CatalogError
            If nothing or more than one run matches.
        """
        if _is_run_dir(run):
            return self.register(run)
        return _match(run, self.run_ids(), self.root)

    def run_dir(self, run_id: str) -> Path:
        """Return the directory of a run in the catalog.

        Raises
        ------
        CatalogError
            If the run is not in the catalog.
        """
        return self._entry(run_id).run_dir

    def run_kind(self, run_id: str) -> str:
        """Return the kind of a run in the catalog (:data:`backtest.results.metrics.RUN_KINDS`).

        Raises
        ------
        CatalogError
            If the run is not in the catalog.
        """
        return self._entry(run_id).kind

    def _entry(self, run_id: str):
        for r in self._runs:
            if r.run_id == run_id:
                return r
        raise CatalogError(f"run {run_id} is not in the catalog of {self.root}")

    def manifest(self, run_id: str) -> dict:
        """Return the manifest of a run in the catalog.

        Raises
        ------
        CatalogError
            If the run is not in the catalog or its manifest cannot be read.
        """
        path = self.run_dir(run_id) / "manifest.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CatalogError(f"cannot read the manifest ({exc})", path) from None

    def summary(self, run_id: str) -> pl.DataFrame:
        """Return one row per policy of ``run_id`` with every metric of the registry.

        Columns: ``policy``, ``family``, each :data:`METRICS` name, and
        ``equity_vs_hard`` (final user equity relative to the run's first hard policy, minus 1;
        null if the run has none). Policies keep the config's order. A metric that does not
        apply to the run's kind (:attr:`Metric.kinds <backtest.results.metrics.Metric.kinds>`)
        is null; a portfolio run has one row per collateral order.

        Raises
        ------
        CatalogError
            If the run is not in the catalog or the SQL fails.
        """
        kind = self.run_kind(run_id)
        cols = ",\n".join(f"{m.sql} AS {m.name}" if kind in m.kinds
                          else f"NULL::DOUBLE AS {m.name}" for m in METRICS)
        sql = f"""
            WITH s AS (SELECT policy, {aggregates_sql("steps", kind)} FROM steps
                       WHERE run_id = $run GROUP BY policy),
                 a AS (SELECT policy, {aggregates_sql("accounts", kind)} FROM accounts
                       WHERE run_id = $run GROUP BY policy),
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


def _columns(spec: dict[str, str]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in spec.items())


_POLARS_UNSUPPORTED = ("INTERVAL", "UNION", "BIT", "TIME WITH TIME ZONE", "UHUGEINT", "MAP")


def _to_polars(rel: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """Convert a result to polars; columns polars cannot hold (intervals, ...) become text."""
    try:
        return rel.pl()
    except (pl.exceptions.PolarsError, duckdb.Error, TypeError, ValueError):
        cols = [f'"{c}"::VARCHAR AS "{c}"' if str(t).upper().startswith(_POLARS_UNSUPPORTED)
                else f'"{c}"' for c, t in zip(rel.columns, rel.types, strict=True)]
        return rel.project(", ".join(cols)).pl()
