"""Where a governance sweep's or ensemble's simulated figures come from: its cells.

:class:`SweepTables` implements :class:`backtest.calibration.compare.FigureSource` over the
catalog views ``sweep_cells`` and ``sweep_steps`` (a run's tables:
:class:`backtest.calibration.sources.RunTables`); :func:`sweep_event_facts` gives the facts of
one event of a sweep from its cells' books, :func:`sweep_labels` how its cells are told apart.
"""

from __future__ import annotations

import copy
from datetime import datetime

from backtest.calibration.compare import SHARE, RunFacts
from backtest.calibration.sources import derive_shares, finite_or_none, sql_str, sql_ts


class SweepTables:
    """Simulated figures of a governance sweep's cells (``sweep_steps``), per parameter set.

    Only unstressed cells are used (a stressed path is not history); figures are averaged
    over seeds. Levels at the window start come from ``open_interest_usd`` (the books' notional
    at the window start, averaged over seeds) since cells keep no accounts table.

    Parameters
    ----------
    catalog : backtest.results.catalog.Catalog
        Open catalog with the sweep registered.
    sweep_id : str
    event : str
        The proposal's event key (``sweep_cells.event``).
    param_sets : list of str
        Parameter-set labels to report, in order (the "policies" of the comparison).
    open_interest_usd : float or None
        Book notional at the window start, USD.
    quantile : float or None
        None: each figure is the mean over the cells; else this quantile across them
        (linear interpolation, as ``sweep_intervals``), e.g. 0.05 for an ensemble's p5.
    by : {"param_set", "policy"}
        What ``param_sets`` name: parameter-set labels (a proposal) or policies (a run
        config's ensemble, whose cells share one parameter set).
    kept : frozenset of int or None
        The members (book seeds) whose cells count; None: all (see :meth:`keeping`).
    open_interest_by_seed : tuple of (int, float)
        Each member's book notional at the window start (``RunFacts.open_interest_by_seed``):
        the level at the window start is then the mean or quantile across the members counted,
        as every other figure; empty: ``open_interest_usd`` for every quantile.

    Attributes
    ----------
    window_shares : bool
        False: :func:`~backtest.calibration.compare.compare` shows no share-of-window rows
        for a sweep, whose figures are means or quantiles across cells (a ratio of two
        quantiles is not a quantile of the ratio).
    """

    window_shares = False

    def __init__(self, catalog, sweep_id: str, event: str, param_sets: list[str],
                 open_interest_usd: float | None, quantile: float | None = None,
                 by: str = "param_set",
                 open_interest_by_seed: tuple[tuple[int, float], ...] = ()):
        self.catalog, self.sweep_id, self.event = catalog, sweep_id, event
        self.policies = list(param_sets)
        self.open_interest_usd = open_interest_usd
        self.open_interest_by_seed = tuple(open_interest_by_seed)
        self.quantile = quantile
        self.by = {"param_set": "param_set", "policy": "policy"}[by]
        self.whole_book = True
        self.kept: frozenset[int] | None = None
        self._cells: dict[tuple[str, str], object] = {}  # per-cell sums by window, shared
        # cells written before they kept cures, the fund's flows or the loans' debt lack those
        # columns, as do options cells (and portfolio cells, cures and debt)
        steps = catalog.query("SELECT * FROM sweep_steps LIMIT 0").columns
        self._has_cures = "cure_usd" in steps
        self._has_fund_flows = {"insurance_draw_usd", "insurance_fees_usd"} <= set(steps)
        self._has_debt = "loan_debt_usd" in steps

    @classmethod
    def from_facts(cls, catalog, sweep_id: str, event: str, param_sets: list[str],
                   facts: RunFacts, by: str = "param_set") -> SweepTables:
        """Return the source of an event whose books :func:`sweep_event_facts` read.

        The members' levels at the window start come from ``facts``.
        """
        return cls(catalog, sweep_id, event, param_sets, facts.open_interest_usd, by=by,
                   open_interest_by_seed=facts.open_interest_by_seed)

    def at(self, quantile: float | None) -> SweepTables:
        """Return the same source giving ``quantile`` across the cells (None: the mean).

        The copy shares the per-cell query results, so each window is queried once however
        many statistics are taken of it.
        """
        other = copy.copy(self)
        other.quantile = quantile
        return other

    def keeping(self, seeds) -> SweepTables:
        """Return the same source over the members whose book seed is in ``seeds`` only.

        Shares the per-cell query results, as :meth:`at` does: one member's figure is the
        ``keeping({seed})`` source's mean.
        """
        other = copy.copy(self)
        other.kept = frozenset(int(s) for s in seeds)
        return other

    def _open_interest(self) -> float | None:
        """Return the book notional at the window start over the members counted."""
        import polars as pl

        values = [v for s, v in self.open_interest_by_seed if self.kept is None or s in self.kept]
        return finite_or_none(self._stat(pl.Series(values))) if values else self.open_interest_usd

    def _stat(self, column):
        if self.quantile is None:
            return column.mean()
        return column.quantile(self.quantile, interpolation="linear")

    def _per_cell(self, a: str, b: str):
        """Return the sums over the window ``[a, b)`` (SQL timestamps) of every unstressed cell.

        The insurance fund's figures are those of :meth:`RunTables.figures`: its draws over the
        window, its balance before the window's first step and after its last; so is the loans'
        debt after the window's last step.
        """
        within = f"FILTER (WHERE st.timestamp >= {a} AND st.timestamp < {b})"
        deposits = f"sum(st.cure_usd) {within}" if self._has_cures else "CAST(NULL AS DOUBLE)"
        if self._has_fund_flows:
            fund = (f"sum(st.insurance_draw_usd) {within}",
                    "arg_min(st.insurance_fund_usd - st.insurance_fees_usd"
                    f" + st.insurance_draw_usd, st.step) {within}",
                    f"arg_max(st.insurance_fund_usd, st.step) {within}")
        else:
            fund = ("CAST(NULL AS DOUBLE)",) * 3
        debt = (f"arg_max(st.loan_debt_usd, st.step) {within}" if self._has_debt
                else "CAST(NULL AS DOUBLE)")
        return self.catalog.query(f"""
            SELECT c.{self.by} AS label, c.seed,
                   sum(st.liquidated_notional_usd) FILTER (WHERE st.timestamp >= {a}
                       AND st.timestamp < {b}) AS liquidated_notional_usd,
                   sum(st.liquidations) FILTER (WHERE st.timestamp >= {a}
                       AND st.timestamp < {b}) AS liquidations_count,
                   sum(st.adl_notional_usd) FILTER (WHERE st.timestamp >= {a}
                       AND st.timestamp < {b}) AS adl_notional_usd,
                   {deposits} AS borrower_deposits_usd,
                   {fund[0]} AS insurance_fund_drawn_usd,
                   {fund[1]} AS insurance_fund_before_usd,
                   {fund[2]} AS insurance_fund_after_usd,
                   {debt} AS borrowed_after_usd,
                   coalesce(max(st.bad_debt_cum_usd) FILTER (WHERE st.timestamp < {b}), 0)
                     - coalesce(max(st.bad_debt_cum_usd) FILTER (WHERE st.timestamp < {a}), 0)
                       AS bad_debt_usd,
                   coalesce(max(st.accounts_liquidated_cum) FILTER (WHERE st.timestamp < {b}), 0)
                     - coalesce(max(st.accounts_liquidated_cum)
                                FILTER (WHERE st.timestamp < {a}), 0)
                       AS accounts_first_liquidated
            FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
            WHERE st.sweep_id = {sql_str(self.sweep_id)} AND c.event = {sql_str(self.event)}
              AND c.stress_kind = 'none'
            GROUP BY ALL""")

    def figures(self, start: datetime, end: datetime, from_run_start: bool, product: str
                ) -> dict[str, dict[str, float | None]]:
        """Return ``{param_set: {measure: value}}`` over ``[start, end)``.

        Each value is the mean over the cells (seeds or ensemble members), or the ``quantile``
        given at construction.

        Cells keep whole-book per-step series only, so ``product`` does not split them (a
        book mixing perps and loans is compared as a whole; :func:`compare` says so).
        """
        a, b = sql_ts(start), sql_ts(end)
        if (a, b) not in self._cells:
            self._cells[a, b] = self._per_cell(a, b)
        per_cell = self._cells[a, b]
        out: dict[str, dict[str, float | None]] = {}
        for label in self.policies:
            cells = (per_cell.filter(per_cell["label"] == label)
                     if per_cell.height else per_cell)
            if self.kept is not None and cells.height:
                cells = cells.filter(cells["seed"].is_in(list(self.kept)))
            fig: dict[str, float | None] = {}
            for col in ("liquidated_notional_usd", "liquidations_count", "adl_notional_usd",
                        "bad_debt_usd", "borrower_deposits_usd", "insurance_fund_drawn_usd",
                        "insurance_fund_before_usd", "insurance_fund_after_usd",
                        "borrowed_after_usd"):
                fig[col] = finite_or_none(self._stat(cells[col])) if cells.height else None
            if cells.height and from_run_start:
                # the first liquidation of every account liquidated in the window
                fig["accounts_liquidated"] = finite_or_none(
                    self._stat(cells["accounts_first_liquidated"]))
            fig["open_interest_before_usd"] = self._open_interest() if from_run_start else None
            derive_shares(fig)
            if from_run_start and cells.height and self.open_interest_by_seed:
                fig[SHARE] = self._share(cells)
            out[label] = fig
        return out

    def _share(self, cells) -> float | None:
        """Return the liquidated share of open interest, member by member, then its stat."""
        import polars as pl

        oi = dict(self.open_interest_by_seed)
        shares = [liq / oi[seed] for seed, liq in zip(cells["seed"].to_list(),
                                                      cells["liquidated_notional_usd"].to_list(),
                                                      strict=True)
                  if oi.get(seed) and liq is not None]
        return finite_or_none(self._stat(pl.Series(shares))) if shares else None


def sweep_event_facts(catalog, sweep_id: str, infos: list[dict], event: str | None,
                      event_key: str, manifest: dict | None = None) -> RunFacts | None:
    """Return the facts of one event of a sweep, from its cells' books; None without cells.

    Parameters
    ----------
    catalog : backtest.results.catalog.Catalog
        Catalog with the sweep registered.
    sweep_id : str
    infos : list of dict
        The event's entries of ``sweep.json`` ``events`` (``book``, ``seed``, ``symbol``,
        ``start``, ``end``).
    event : str or None
        Catalogued event key.
    event_key : str
        The sweep's key of the event (``sweep_cells.event``).
    manifest : dict, optional
        The sweep's ``sweep.json``: the target its cells' insurance fund started at
        (``[insurance_fund] initial_balance_from``), an input rather than a held-out figure.

    Returns
    -------
    RunFacts or None
        Venue and fitted targets from the first readable book's metadata, products over all,
        open interest the mean of the books' recorded (or first-open) notionals.
    """
    from backtest.books.io import read_book_table
    from backtest.calibration.compare import base_asset, fit_keys, sizing_inputs
    from backtest.errors import LiqbtError

    if not infos:
        return None
    opens = catalog.query(f"""
        SELECT c.seed, arg_min(st.open, st.step) AS open0
        FROM sweep_steps st JOIN sweep_cells c USING (sweep_id, cell_id)
        WHERE st.sweep_id = {sql_str(sweep_id)} AND c.event = {sql_str(event_key)}
          AND c.stress_kind = 'none' GROUP BY c.seed""")
    open0 = {int(r["seed"]): float(r["open0"]) for r in opens.iter_rows(named=True)}
    meta: dict = {}
    products: set[str] = set()
    by_seed = []
    for info in infos:
        try:
            frame, m = read_book_table(info["book"])
        except (OSError, LiqbtError):
            continue
        meta = meta or m
        products |= set(frame["product"].unique().to_list())
        recorded, seed = m.get("open_interest_usd"), int(info["seed"])
        if recorded is not None:
            by_seed.append((seed, float(recorded)))
        elif seed in open0:
            by_seed.append((seed, float(frame["size"].sum()) * open0[seed]))
    first = infos[0]
    return RunFacts(
        event=event, asset=base_asset(first.get("symbol")),
        products=tuple(sorted(products)), venue=meta.get("venue") or None,
        start=datetime.fromisoformat(first["start"]), end=datetime.fromisoformat(first["end"]),
        fit_keys=fit_keys(meta), imported=meta.get("source") == "imported",
        open_interest_usd=sum(v for _, v in by_seed) / len(by_seed) if by_seed else None,
        open_interest_by_seed=tuple(by_seed),
        input_keys=_inputs(manifest) | sizing_inputs(meta, fit_keys(meta)),
        unsized=meta.get("unsized") or None)


def _inputs(manifest: dict | None) -> frozenset[str]:
    """Return the targets a sweep's cells took an input from (its insurance fund's start)."""
    run = (((manifest or {}).get("config") or {}).get("resolved") or {}).get("run") or {}
    fund_from = (run.get("insurance_fund") or {}).get("initial_balance_from")
    return frozenset([fund_from] if fund_from else [])


def sweep_labels(catalog, sweep_id: str) -> tuple[str, list[str]]:
    """Return how a sweep's cells are told apart, and their labels in order.

    A proposal's cells share a policy and differ by parameter set (``"param_set"``); a run
    config's ensemble has one parameter set and one or more policies (``"policy"``).

    Returns
    -------
    str, list of str
        ``"param_set"`` or ``"policy"`` (for :class:`SweepTables`), and the distinct values.
    """
    def distinct(column: str) -> list[str]:
        return catalog.query(f"SELECT DISTINCT {column} FROM sweep_cells WHERE sweep_id = "
                             f"{sql_str(sweep_id)} ORDER BY 1")[column].to_list()

    sets = distinct("param_set")
    return ("param_set", sets) if len(sets) > 1 else ("policy", distinct("policy"))
