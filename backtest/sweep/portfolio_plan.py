"""Plan a portfolio sweep: align each event's tapes, draw its books, list the cells.

A portfolio cell (``kind = "portfolio"`` in the sweep, ``run_kind = 'portfolio'`` in its
summary) is one simulation of the multi-asset lending + cross-margin perp book of
:mod:`backtest.portfolio` under one portfolio policy (a collateral order with one parameter
set of :mod:`backtest.sweep.portfolio_grid`), for one event, seed (or ensemble member) and
stress transform. The book is drawn once per (event, seed) with
:func:`backtest.portfolio.generate_portfolio_book` from the sweep's ``[portfolio]`` section,
exactly as ``liqbt portfolio run`` draws it from the same accounts, seed, book parameters and
policy, and written into ``<sweep dir>/books/``; every parameter set of that (event, seed) is
simulated on it, with the section's market (``[portfolio.market]``: impact, cascade, oracle,
ADL per asset) and keepers (``[portfolio.keepers]``), which travel in the cell's
``run_config`` as ``liqbt portfolio run`` reads them from its config. The cell id is a sha256
of the run kind, the aligned-tape selection, the
book's generating spec, the tapes' sha256, the policy as simulated, the stress transform,
the seed (and member), the engine version and, when not the defaults, the market and keepers,
so a restarted sweep skips the finished cells.

An ensemble member of a portfolio sweep draws its book seed only
(:func:`backtest.sweep.ensemble.book_seed`): the uncertain inputs of a single-asset ensemble
(leverage, depth, keepers, ...) are drawn for the single-asset engine's book and market only;
a portfolio sweep's market and keepers are its ``[portfolio]`` section's, the same in every
member.
"""

from __future__ import annotations

from pathlib import Path

from backtest import paths
from backtest.engine.config import KeeperConfig
from backtest.errors import ConfigError
from backtest.portfolio.book import generate_portfolio_book, write_portfolio_book
from backtest.portfolio.market import PortfolioMarketParams
from backtest.portfolio.model import PortfolioParams
from backtest.provenance import engine_version, file_sha256
from backtest.sweep.config import EventSpec, SweepConfig
from backtest.sweep.ensemble import book_seed
from backtest.sweep.grid import ParamSet
from backtest.sweep.plan import CellSpec, SweepPlan, _digest, _opt, raise_duplicate
from backtest.sweep.portfolio_grid import apply_portfolio_params, expand_portfolio
from backtest.tapes import TapeStore
from backtest.tapes.align import AlignedTapes, align_tapes

PORTFOLIO = "portfolio"
"""Run kind of a portfolio cell."""

FAMILY = "portfolio"
"""``family`` of a portfolio cell's policy (as ``policies.family`` of a portfolio run)."""


def tape_selection(ev: EventSpec) -> dict:
    """Return what :func:`align_event` reads for one event, as JSON values (``run_config``)."""
    return {"event": ev.event, "symbols": ev.symbols, "interval": ev.interval,
            "start": ev.start.isoformat() if ev.start else None,
            "end": ev.end.isoformat() if ev.end else None, "missing": ev.missing or "error"}


def align_event(selection: dict, store: str | Path | None, events: str | Path | None
                ) -> AlignedTapes:
    """Align an event's tapes on one clock, as ``liqbt portfolio run`` does.

    Parameters
    ----------
    selection : dict
        :func:`tape_selection`.
    store, events : str or Path, optional
        Tape store and event catalog.

    Returns
    -------
    AlignedTapes

    Raises
    ------
    TapeError
        An asset without a tape covering the window, or a missing step with ``missing =
        "error"``.
    """
    return align_tapes(TapeStore(store), selection["event"], selection["symbols"],
                       selection["interval"], start=selection["start"], end=selection["end"],
                       missing=selection["missing"],
                       events_path=None if events is None else str(events))


def market_settings(section) -> dict:
    """Return the section's market and keepers as JSON values, only those not the defaults.

    Parameters
    ----------
    section : PortfolioSweepSection

    Returns
    -------
    dict
        ``{"market": ..., "keepers": ...}``, each present only when it differs from the
        default (historical prices; keepers that act at once, for free), so that the cells of
        a sweep without them keep their ids.
    """
    out = {}
    for name, value, default in (("market", section.market, PortfolioMarketParams()),
                                 ("keepers", section.keepers, KeeperConfig())):
        dumped = value.model_dump(mode="json")
        if dumped != default.model_dump(mode="json"):
            out[name] = dumped
    return out


def policy_json(name: str, params: PortfolioParams) -> dict:
    """Return a portfolio policy as a cell's ``policy``: name, family and parameters."""
    return {"name": name, "family": FAMILY, **params.model_dump(mode="json")}


def policy_variants(cfg: SweepConfig, config_path: Path,
                    param_sets: dict[str, list[ParamSet]] | None
                    ) -> list[tuple[ParamSet, PortfolioParams]]:
    """Return every (parameter set, policy) of the sweep, over its collateral orders.

    A parameter set that sets ``order`` simulates that order whatever policy it came from.
    """
    base = cfg.portfolio_section.params
    out = []
    for order in cfg.policies:
        start = base.model_copy(update={"order": order})
        if param_sets is not None and order in param_sets:
            sets = param_sets[order]
        else:
            try:
                sets = expand_portfolio([("grid", cfg.grid), (f"policy_grids.{order}",
                                                              cfg.policy_grids.get(order, {}))])
            except ConfigError as exc:
                raise ConfigError(exc.detail, exc.path or config_path) from None
        out.extend((ps, apply_portfolio_params(start, ps.params, str(config_path)))
                   for ps in sets)
    return out


def _units(cfg: SweepConfig) -> list[tuple[int, int, dict]]:
    """Return ``(book seed, member, member inputs)`` per seed or ensemble member."""
    if cfg.ensemble is None:
        return [(seed, -1, {}) for seed in cfg.seeds]
    out = []
    for k in range(cfg.ensemble.members):
        seed = book_seed(cfg.ensemble.seed, k)
        out.append((seed, k, {"book_seed": seed}))
    return out


def plan_portfolio_sweep(cfg: SweepConfig, config_path: str | Path, out_dir: str | Path,
                         store: str | Path | None = None, strategies: str | Path | None = None,
                         events: str | Path | None = None,
                         param_sets: dict[str, list[ParamSet]] | None = None) -> SweepPlan:
    """Check a portfolio sweep's inputs, draw missing books, list the cells.

    Parameters
    ----------
    cfg : SweepConfig
        ``kind = "portfolio"``.
    config_path : str or Path
    out_dir : str or Path
        Sweep directory (books go to ``<out_dir>/books``).
    store, strategies, events : str or Path, optional
        Tape store, strategies directory (unused by portfolio cells), event catalog.
    param_sets : dict of str to list of ParamSet, optional
        Explicit parameter sets per collateral order (governance proposals).

    Returns
    -------
    SweepPlan

    Raises
    ------
    ConfigError
        An unknown grid field, an invalid value (naming the field and the parameter set), an
        asset without risk parameters, an unknown event.
    TapeError
        An asset without a tape for the window.
    """
    config_path = Path(config_path)
    books_dir = Path(out_dir) / "books"
    section = cfg.portfolio_section
    version_info = engine_version()
    variants = policy_variants(cfg, config_path, param_sets)
    cells: list[CellSpec] = []
    inputs: list[dict] = []
    event_rows: list[dict] = []
    tape_store = TapeStore(store)
    market = market_settings(section)
    ensemble_info = None if cfg.ensemble is None else {
        "members": cfg.ensemble.members, "seed": cfg.ensemble.seed,
        "events": {ev.key: {} for ev in cfg.events}}
    for ev in cfg.events:
        selection = tape_selection(ev)
        aligned = align_event(selection, store, events)
        try:
            section.params.asset_risk(aligned.symbols)
            for _, p in variants:
                p.asset_risk(aligned.symbols)
        except ConfigError as exc:
            raise ConfigError(f"event {ev.key}: {exc.detail}", config_path) from None
        tapes = {}
        for sym, key in aligned.sources.items():
            path = tape_store.root / f"{key}.parquet"
            tapes[sym] = file_sha256(path)
            inputs.append({"kind": f"tape {key}", "path": str(path), "sha256": tapes[sym]})
        symbol = ", ".join(aligned.symbols)
        for seed, member, member_inputs in _units(cfg):
            book_spec = {"kind": PORTFOLIO, "tapes": selection, "symbols": list(aligned.symbols),
                         "interval": aligned.interval, "accounts": ev.accounts, "seed": seed,
                         "book_params": section.book_params.model_dump(mode="json"),
                         "params": section.params.model_dump(mode="json"),
                         "code": version_info["sources"]}
            book_path = books_dir / f"{ev.key}-seed{seed}-{_digest(book_spec, 12)}.parquet"
            if not book_path.exists():
                book = generate_portfolio_book(ev.accounts, aligned, seed, section.book_params,
                                               section.params)
                write_portfolio_book(book, book_path)
            inputs.append({"kind": f"book {ev.key} seed {seed}", "path": str(book_path),
                           "sha256": file_sha256(book_path)})
            member_row = ({"member": member, "member_inputs": member_inputs}
                          if member >= 0 else {})
            event_rows.append({**member_row, "event": ev.key, "event_key": ev.event,
                               "symbol": symbol, "price_symbol": aligned.symbols[0],
                               "interval": aligned.interval, "seed": seed,
                               "start": aligned.start.isoformat(),
                               "end": aligned.end.isoformat(), "steps": aligned.n_steps,
                               "accounts": ev.accounts, "book": str(book_path),
                               "tape": ", ".join(str(tape_store.root / f"{k}.parquet")
                                                 for k in aligned.sources.values())})
            run_config = {**selection, "book": str(book_path.resolve()), **market}
            for stress in cfg.stress:
                stress_json = stress.model_dump(mode="json")
                for ps, params in variants:
                    pol = policy_json(params.order, params)
                    key = {"kind": PORTFOLIO, "tapes": selection, "book": book_spec,
                           "tape_sha256": tapes, "policy": pol, "stress": stress_json,
                           "seed": seed, "engine": version_info, **market}
                    if member >= 0:
                        key["member"] = member
                    cells.append(CellSpec(
                        cell_id=_digest(key), event=ev.key, event_key=ev.event, symbol=symbol,
                        interval=aligned.interval, run_config=run_config,
                        config_path=str(config_path), policy=pol, policy_path="",
                        param_set=ps.label, params=dict(ps.params), seed=seed,
                        stress=stress_json, stress_label=stress.label,
                        store=_opt(paths.tape_store(store)),
                        strategies=_opt(paths.strategies_dir(strategies)),
                        events=_opt(paths.events_file(events)), threads=cfg.threads_per_cell,
                        member=member, member_inputs=dict(member_inputs), kind=PORTFOLIO))
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise_duplicate(next(c for c in cells if ids.count(c.cell_id) > 1), config_path)
    return SweepPlan(cfg.name, cells, inputs, event_rows, ensemble_info)


__all__ = ["FAMILY", "PORTFOLIO", "align_event", "market_settings", "plan_portfolio_sweep",
           "policy_json",
           "policy_variants", "tape_selection"]
