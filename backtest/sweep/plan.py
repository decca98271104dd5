"""Plan a sweep: draw (or reuse) the books, check every input, list the cells with their hashes.

A cell is one simulation: (event, policy, parameter set, seed or ensemble member, stress
transform). With an ``[ensemble]`` (:mod:`backtest.sweep.ensemble`), member ``k`` replaces the
seeds: its drawn book seed, book parameters and run sections make its own book and run config.
Its id is a
sha256 of everything its result depends on: the resolved run-config sections, the book's
generating spec, the tape file's sha256, the policy as simulated (after the parameter set is
applied), the stress transform, the seed, the package version and the digests of the kernels
and of every source a result depends on (:func:`backtest.provenance.engine_version`). A
restarted sweep therefore skips exactly the cells whose inputs are unchanged. A drawn book is
reused by the file name its spec and that same source digest give, so new generator code draws
new books rather than reusing ones drawn by older code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backtest import paths
from backtest.books import write_book
from backtest.books.event import book_for_event
from backtest.books.generate import BookParams
from backtest.calibration.fitted import calibrated_params
from backtest.engine.config import RunConfig, TapeSelection
from backtest.engine.run import resolve_config
from backtest.errors import ConfigError
from backtest.events import get_event
from backtest.policies import load_policy
from backtest.provenance import engine_version, file_sha256
from backtest.sweep.config import EventSpec, RunSections, SweepConfig
from backtest.sweep.ensemble import (
    apply_member,
    default_ranges,
    input_table,
    member_values,
    policy_values,
)
from backtest.sweep.grid import ParamSet, apply_params, expand
from backtest.validation import describe


@dataclass(frozen=True)
class CellSpec:
    """Everything a worker needs to simulate one cell (plain, picklable values).

    Attributes
    ----------
    cell_id : str
        Hash of the cell's inputs (see the module docstring), 24 hex digits.
    event, event_key, symbol, interval : str
        Event entry name, catalog key, asset and tape interval.
    run_config : dict
        The :class:`backtest.engine.config.RunConfig` of the (event, seed), as JSON values.
    config_path : str
        The sweep or proposal file (named in error messages).
    policy : dict
        The policy as simulated (parameter set applied), as JSON values.
    policy_path : str
        Policy file.
    param_set : str
        Parameter set label.
    params : dict
        Dotted field -> value of the parameter set.
    seed : int
    stress : dict
        The stress transform (:mod:`backtest.sweep.stress`), as JSON values.
    stress_label : str
    store, strategies, events : str or None
        Tape store, strategies directory and event catalog.
    threads : int
        numba threads for the cell.
    member : int
        Ensemble member (0..N-1), or -1 without an ensemble.
    member_inputs : dict
        The member's drawn inputs (``book_seed`` and :data:`backtest.sweep.ensemble.INPUTS`
        that vary for this event); empty without an ensemble.
    kind : str
        Run kind the cell simulates: ``single_asset`` (the engine) or ``portfolio``
        (:mod:`backtest.sweep.portfolio_cell`; ``run_config`` then holds the aligned tapes'
        selection and the book file, ``policy`` the portfolio policy).
    """

    cell_id: str
    event: str
    event_key: str
    symbol: str
    interval: str
    run_config: dict
    config_path: str
    policy: dict
    policy_path: str
    param_set: str
    params: dict
    seed: int
    stress: dict
    stress_label: str
    store: str | None
    strategies: str | None
    events: str | None
    threads: int = 1
    member: int = -1
    member_inputs: dict = field(default_factory=dict)
    kind: str = "single_asset"


@dataclass
class SweepPlan:
    """A planned sweep.

    Attributes
    ----------
    name : str
    cells : list of CellSpec
        In execution order (event, seed, stress, policy, parameter set).
    inputs : list of dict
        Files the sweep reads: kind, path, sha256 (tapes, books, policies, book parameters).
    events : list of dict
        Per (event, seed or member): key, symbol, window, steps, book path (and the member and
        its inputs with an ensemble).
    ensemble : dict or None
        With an ensemble: members, seed, and per event the range of every varied input and
        where it came from (``ensemble``, ``calibration <file>``, ``validation targets``,
        ``default``), and the inputs left undrawn and why
        (:func:`backtest.sweep.ensemble.input_table`).
    """

    name: str
    cells: list[CellSpec]
    inputs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    ensemble: dict | None = None


def _digest(obj: Any, n: int = 24) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _policy_path(name: str, strategies: str | Path | None) -> Path:
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return path
    return paths.strategies_dir(strategies) / f"{name}.toml"


def _opt(p: str | Path | None) -> str | None:
    return None if p is None else str(Path(p).resolve())


def plan_sweep(cfg: SweepConfig, config_path: str | Path, out_dir: str | Path,
               store: str | Path | None = None, strategies: str | Path | None = None,
               events: str | Path | None = None,
               param_sets: dict[str, list[ParamSet]] | None = None) -> SweepPlan:
    """Check a sweep's inputs, draw missing books into ``<out_dir>/books``, list the cells.

    Parameters
    ----------
    cfg : SweepConfig
    config_path : str or Path
        The sweep file (recorded, named in errors).
    out_dir : str or Path
        Sweep directory.
    store, strategies, events : str or Path, optional
        Tape store, strategies directory, event catalog.
    param_sets : dict of str to list of ParamSet, optional
        Explicit parameter sets per policy (governance proposals); default the expansion of
        ``cfg.grid`` and ``cfg.policy_grids``.

    Returns
    -------
    SweepPlan

    Raises
    ------
    ConfigError
        A grid field missing from a policy's model, an invalid parameter value, an unknown
        event or policy; the message names the sweep file and the field.
    TapeError, BookError
        No tape for an event, or a book cannot be drawn.
    """
    config_path = Path(config_path)
    books_dir = Path(out_dir) / "books"
    version_info = engine_version()
    policies = []  # (name, path, [(ParamSet, policy model)])
    inputs: list[dict] = []
    for name in cfg.policies:
        base = load_policy(name, strategies)
        path = _policy_path(name, strategies)
        if param_sets is not None and name in param_sets:
            sets = param_sets[name]
        else:
            try:
                sets = expand([("grid", cfg.grid), (f"policy_grids.{name}",
                                                      cfg.policy_grids.get(name, {}))],
                              type(base), name)
            except ConfigError as exc:
                raise ConfigError(exc.detail, exc.path or config_path) from None
        variants = [(ps, apply_params(base, ps.params, str(config_path))) for ps in sets]
        policies.append((name, path, variants))
        inputs.append({"kind": f"policy {name}", "path": str(path), "sha256": file_sha256(path)})

    # who liquidates under any of the policies' parameter sets (ensembles draw keeper latency
    # only where keepers do; docs/ensembles.md)
    liquidators = frozenset(policy.liquidator for _, _, variants in policies
                            for _, policy in variants)
    cells: list[CellSpec] = []
    event_rows: list[dict] = []
    tapes_seen: set[str] = set()
    ensemble_info: dict | None = None
    if cfg.ensemble is not None:
        ensemble_info = {"members": cfg.ensemble.members, "seed": cfg.ensemble.seed,
                         "events": {}}
    for ev in cfg.events:
        asset = (ev.symbol or get_event(ev.event, events).symbols[0]).split("/")[0]
        base_params, book_meta = calibrated_params(ev.book_params, ev.event, asset)
        if ev.book_params is not None:
            inputs.append({"kind": f"book parameters {ev.key}", "path": str(ev.book_params),
                           "sha256": file_sha256(ev.book_params)})
        for seed, member, member_inputs, params, sections, ranges in _members(
                cfg, ev, asset, base_params, book_meta, ensemble_info, liquidators):
            book_spec = {"event": ev.model_dump(mode="json", exclude={
                             "label", "book_params", "symbols", "missing"}),
                         "generator": params.model_dump(mode="json"), "seed": seed,
                         "meta": book_meta, "code": version_info["sources"]}
            book_path = books_dir / f"{ev.key}-seed{seed}-{_digest(book_spec, 12)}.parquet"
            if not book_path.exists():
                book = book_for_event(ev.accounts, ev.event, seed, ev.symbol, ev.venue,
                                      ev.market, ev.interval, params, store, events, ev.start)
                book.meta.update(book_meta)
                write_book(book, book_path)
            run_cfg = _run_config(cfg, ev, book_path, sections)
            resolved = resolve_config(run_cfg, config_path, store, strategies, events)
            tape_path = str(resolved.tape.path)
            tape_sha = file_sha256(resolved.tape.path)
            if tape_path not in tapes_seen:
                tapes_seen.add(tape_path)
                inputs.append({"kind": f"tape {resolved.tape.meta.key}", "path": tape_path,
                               "sha256": tape_sha})
            inputs.append({"kind": f"book {ev.key} seed {seed}", "path": str(book_path),
                           "sha256": file_sha256(book_path)})
            member_row = ({"member": member, "member_inputs": member_inputs}
                          if member >= 0 else {})
            event_rows.append({**member_row,
                "event": ev.key, "event_key": ev.event, "symbol": resolved.symbol,
                "interval": resolved.tape.meta.interval, "seed": seed,
                "start": resolved.start.isoformat(), "end": resolved.end.isoformat(),
                "steps": resolved.window.rows, "accounts": len(resolved.book),
                "book": str(book_path), "tape": tape_path})
            run_json = run_cfg.model_dump(mode="json")
            # a member's keeper draws do not reach policies the venue's engine liquidates
            # when the policies mix the two (EventRanges.keepers_only)
            engine_inputs = (member_inputs if ranges is None else
                             policy_values(member_inputs, ranges, "engine"))
            engine_json = run_json
            if engine_inputs != member_inputs:
                engine_json = _run_config(cfg, ev, book_path, sections.model_copy(
                    update={"keepers": cfg.run.keepers})).model_dump(mode="json")
            for stress in cfg.stress:
                stress_json = stress.model_dump(mode="json")
                for _name, path, variants in policies:
                    for ps, policy in variants:
                        engine = policy.liquidator == "engine"
                        cell_json = engine_json if engine else run_json
                        cell_inputs = engine_inputs if engine else member_inputs
                        hashed_run = {k: v for k, v in cell_json.items()
                                      if k not in ("name", "book", "policies")}
                        policy_json = policy.model_dump(mode="json")
                        key = {"run": hashed_run, "book": book_spec, "tape": tape_sha,
                               "policy": policy_json, "stress": stress_json, "seed": seed,
                               "engine": version_info}
                        if member >= 0:
                            key["member"] = member
                        cells.append(CellSpec(
                            cell_id=_digest(key), event=ev.key, event_key=ev.event,
                            symbol=resolved.symbol, interval=resolved.tape.meta.interval,
                            run_config=cell_json, config_path=str(config_path),
                            policy=policy_json, policy_path=str(path), param_set=ps.label,
                            params=dict(ps.params), seed=seed, stress=stress_json,
                            stress_label=stress.label, store=_opt(paths.tape_store(store)),
                            strategies=_opt(paths.strategies_dir(strategies)),
                            events=_opt(paths.events_file(events)),
                            threads=cfg.threads_per_cell, member=member,
                            member_inputs=dict(cell_inputs)))
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        dup = next(c for c in cells if ids.count(c.cell_id) > 1)
        raise_duplicate(dup, config_path)
    return SweepPlan(cfg.name, cells, inputs, event_rows, ensemble_info)


def _members(cfg: SweepConfig, ev: EventSpec, asset: str, params: BookParams, book_meta: dict,
             info: dict | None, liquidators: frozenset[str]):
    """Yield ``(seed, member, member_inputs, book params, run sections, ranges)`` of one event.

    Without an ensemble: one tuple per seed of ``cfg.seeds`` (member -1, no inputs, the
    event's parameters and the sweep's sections, ranges None). With one: one per member, drawn
    by :mod:`backtest.sweep.ensemble` for policies liquidated by ``liquidators``;
    ``info["events"][ev.key]`` records the ranges (and the inputs left undrawn, and why).
    """
    if cfg.ensemble is None:
        for seed in cfg.seeds:
            yield seed, -1, {}, params, cfg.run, None
        return
    ranges = default_ranges(cfg.ensemble, params, ev.book_params, book_meta, cfg.run, ev.event,
                            asset, liquidators=liquidators)
    info["events"][ev.key] = input_table(ranges)
    for k in range(cfg.ensemble.members):
        values = member_values(cfg.ensemble, k, ranges)
        try:
            m_params, m_run = apply_member(values, params, cfg.run, ranges)
        except ValidationError as exc:
            raise ConfigError(f"[ensemble] member {k}, event {ev.key}: a drawn input is "
                              f"invalid: {describe(exc)}") from None
        yield int(values["book_seed"]), k, values, m_params, m_run, ranges


def raise_duplicate(cell: CellSpec, config_path: Path) -> None:
    """Raise the error for two cells that would simulate exactly the same thing."""
    raise ConfigError(f"two cells are identical (event {cell.event}, policy "
                      f"{cell.policy['name']}, parameters {cell.param_set}, stress "
                      f"{cell.stress_label}): a grid repeats a value or sets a parameter to a "
                      "value a policy already has", config_path)


def _run_config(cfg: SweepConfig, ev: EventSpec, book_path: Path,
                sections: RunSections | None = None) -> RunConfig:
    """Return the run config of one (event, seed or member): sections, event window and book."""
    run = sections or cfg.run
    return RunConfig(
        name=f"{cfg.name}-{ev.key}", description=cfg.description, event=ev.event,
        start=ev.start, end=ev.end, symbol=ev.symbol, book=book_path.resolve(),
        policies=list(cfg.policies),
        tape=TapeSelection(venue=ev.venue, market=ev.market, interval=ev.interval),
        execution=run.execution, market=run.market, oracle=run.oracle,
        keepers=run.keepers, insurance_fund=run.insurance_fund, response=run.response)


def plan_table(plan: SweepPlan):
    """Return the plan as a polars DataFrame, one row per cell (``plan.parquet``)."""
    import polars as pl

    rows = [{"cell_id": c.cell_id, "run_kind": c.kind, "event": c.event, "symbol": c.symbol,
             "interval": c.interval,
             "policy": c.policy["name"], "family": c.policy["family"],
             "param_set": c.param_set, "params": json.dumps(c.params, sort_keys=True),
             "seed": c.seed, "stress": c.stress_label, "member": c.member,
             "member_inputs": json.dumps(c.member_inputs, sort_keys=True)}
            for c in plan.cells]
    return pl.DataFrame(rows, schema={"cell_id": pl.String, "run_kind": pl.String,
                                      "event": pl.String,
                                      "symbol": pl.String, "interval": pl.String,
                                      "policy": pl.String, "family": pl.String,
                                      "param_set": pl.String, "params": pl.String,
                                      "seed": pl.Int64, "stress": pl.String,
                                      "member": pl.Int64, "member_inputs": pl.String})


def cell_dict(cell: CellSpec) -> dict:
    """Return a cell spec as a plain dict (``cell.json``)."""
    return asdict(cell)
