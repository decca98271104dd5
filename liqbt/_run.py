"""A finished run seen from Python.

Its manifest, its tables as polars frames or DuckDB relations, its summary and its report
figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from backtest import paths
from backtest.errors import CatalogError

if TYPE_CHECKING:
    import duckdb
    import plotly.graph_objects as go
    import polars as pl

#: Tables a single-asset run directory may hold (``adl`` only when a policy deleverages).
TABLES = ("prices", "steps", "accounts", "liquidations", "adl", "policies")


class Run:
    """A finished run (one run directory).

    :meth:`summary` and :meth:`figures` are those of single-asset runs (``liqbt run``);
    :meth:`table` and :meth:`sql` read any run directory, portfolio runs included.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (it holds ``manifest.json`` and one Parquet file per table).

    Attributes
    ----------
    run_dir : Path
    run_id : str
    manifest : dict
        The run's ``manifest.json``: config, window, tape and book hashes, policies, timings.

    Raises
    ------
    CatalogError
        If the directory holds no readable ``manifest.json``.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        try:
            self.manifest = json.loads((self.run_dir / "manifest.json").read_text("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CatalogError(f"not a run directory (manifest.json unreadable: {exc})",
                               self.run_dir) from None
        self.run_id = self.manifest.get("run_id", self.run_dir.name)
        self._connection: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, policies={self.policies})"

    @property
    def policies(self) -> list[str]:
        """Policy names, in run order."""
        return [p["name"] for p in self.manifest.get("policies", [])]

    def tables(self) -> list[str]:
        """Names of the tables this run directory holds (its Parquet files).

        A single-asset run holds those of :data:`TABLES`; a portfolio run
        (``runs/portfolio/<run_id>/``) holds its own (``order_comparison``,
        ``portfolio_steps``, ...), readable the same way.
        """
        known = [t for t in TABLES if (self.run_dir / f"{t}.parquet").is_file()]
        others = sorted(p.stem for p in self.run_dir.glob("*.parquet") if p.stem not in TABLES)
        return known + others

    def table(self, name: str) -> pl.DataFrame:
        """Read one table as a polars DataFrame.

        Parameters
        ----------
        name : str
            One of :meth:`tables`: ``prices`` (one row per step), ``steps`` (per policy and
            step, USD aggregates), ``accounts`` (per policy and account), ``liquidations``
            (one row per liquidation event), ``adl``, ``policies``. Columns: README.md,
            "Tables and views".

        Raises
        ------
        CatalogError
            If the run has no such table.
        """
        import polars as pl

        if name not in self.tables():
            raise CatalogError(f"run {self.run_id} has no table {name!r}; it has "
                               + ", ".join(self.tables()))
        return pl.read_parquet(self.run_dir / f"{name}.parquet")

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run SQL over this run's tables and return a DuckDB relation (lazy).

        Each table is a view of the same name over its Parquet file, on an in-memory DuckDB
        connection owned by this object. Convert with ``.pl()`` (polars), ``.df()`` (pandas,
        if installed) or ``.fetchall()``.

        Parameters
        ----------
        query : str
            A SELECT over ``prices``, ``steps``, ``accounts``, ``liquidations``, ``adl``,
            ``policies``.
        """
        return self._duckdb().sql(query)

    def _duckdb(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            import duckdb

            con = duckdb.connect()
            for name in self.tables():
                path = str(self.run_dir / f"{name}.parquet").replace("'", "''")
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet(\'{path}\')')
            self._connection = con
        return self._connection

    def summary(self) -> pl.DataFrame:
        """One row per policy: the summary metrics the CLI and the report show.

        Columns follow :data:`backtest.results.metrics.METRICS` (money in USD, fractions as
        fractions), plus ``policy``.
        """
        from backtest.results.catalog import Catalog

        with Catalog(self.run_dir.parent) as catalog:
            return catalog.summary(catalog.resolve(str(self.run_dir)))

    def figures(self) -> dict[str, go.Figure]:
        """Every report figure of this run, by its id in the HTML report.

        Returns
        -------
        dict of str to plotly.graph_objects.Figure
            In report order: ``price``, ``liquidated-notional``, ``impact``,
            ``bad-debt-insurance``, ``equity-oi``, ``accounts-liquidated``, ``account-status``,
            ``leverage``. ``fig.show()`` in a notebook, ``fig.write_html(path)`` to save one.
        """
        from backtest.report import build, figures
        from backtest.results.catalog import Catalog

        with Catalog(self.run_dir.parent) as catalog:
            data = build.load_report_data(catalog, catalog.resolve(str(self.run_dir)))
        colors = figures.policy_colors(data.policy_names)
        for p in data.policies:
            p.color = colors[p.name]
        return {div_id.removeprefix("fig-"): builder(data)
                for div_id, _heading, builder in figures.FIGURES}

    def close(self) -> None:
        """Close the DuckDB connection behind :meth:`sql` (reopened on the next call)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def open_run(run: str | Path = "latest", runs: str | Path | None = None) -> Run:
    """Open a finished run.

    Parameters
    ----------
    run : str or Path
        Run directory, run id, unique prefix of one, or ``latest`` (default).
    runs : str or Path, optional
        Runs directory (default ``$LIQBT_RUNS`` or ``runs``).

    Raises
    ------
    CatalogError
        If no run matches, or a prefix matches several.
    """
    from backtest.results.runs import resolve_run_dir

    return Run(resolve_run_dir(run, paths.runs_dir(runs)))


def run(config: str | Path, *, overrides: list[str] | None = None,
        runs: str | Path | None = None, store: str | Path | None = None,
        strategies: str | Path | None = None, events: str | Path | None = None,
        show_progress: bool = False) -> Run:
    """Simulate every policy of a run config and return the finished run.

    The same as ``liqbt run CONFIG --set KEY=VALUE ...``: the results are written to a new
    run directory under the runs directory and registered like any other run.

    Parameters
    ----------
    config : str or Path
        Run config (TOML; README.md, "Run configs").
    overrides : list of str, optional
        ``KEY=VALUE`` replacements with dotted keys and TOML values
        (``["book=data/books/b.parquet", "tape.interval=5m"]``).
    runs, store, strategies, events : str or Path, optional
        Runs directory, tape store, policy directory and event catalog (defaults: the
        ``LIQBT_*`` environment variables, then the project's folders).
    show_progress : bool
        Show the progress bar (on a terminal) or progress lines (in a log).

    Returns
    -------
    Run

    Raises
    ------
    LiqbtError
        Any invalid input (config, book, tape, policy), with a message naming the file and
        field.
    """
    from backtest.engine.run import execute

    _run_id, run_dir = execute(config, runs, store, strategies, events,
                               show_progress=show_progress, overrides=overrides)
    return Run(run_dir)


def query(sql: str, runs: str | Path | None = None) -> pl.DataFrame:
    """Answer SQL across every finished run, as ``liqbt query`` does.

    Parameters
    ----------
    sql : str
        A query over the catalog's tables and views (README.md, "Tables and views").
    runs : str or Path, optional
        Runs directory (default ``$LIQBT_RUNS`` or ``runs``).

    Returns
    -------
    polars.DataFrame
    """
    from backtest.results.catalog import Catalog

    with Catalog(runs) as catalog:
        return catalog.query(sql)


def list_runs(runs: str | Path | None = None) -> pl.DataFrame:
    """Every finished run, oldest first (what ``liqbt list runs`` prints), as a DataFrame.

    Columns: ``run_id``, ``kind``, ``created``, ``event``, ``symbol``, ``window``,
    ``accounts``, ``policies`` (list of str), ``wall_seconds``, ``run_dir``.
    """
    import polars as pl

    from backtest.results.runs import list_runs as scan

    rows = scan(paths.runs_dir(runs))
    schema = {"run_id": pl.String, "kind": pl.String, "created": pl.String,
              "event": pl.String, "symbol": pl.String, "window": pl.String,
              "accounts": pl.Int64, "policies": pl.List(pl.String),
              "wall_seconds": pl.Float64, "run_dir": pl.String}
    return pl.DataFrame(rows, schema=schema)
