"""``liqbt book calibrate``: fit, check out of sample, write the calibrated file, print errors."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from backtest.calibration.fit import (
    Calibration,
    EventOutcome,
    FitResult,
    load_calibration,
)
from backtest.calibration.fitted import size_measure, write_calibrated
from backtest.calibration.loan_state import calibrate_loan_state, is_loan_state
from backtest.calibration.timing import timing_rows
from backtest.engine.config import ResponseConfig
from backtest.provenance import command_line


def _row(o: EventOutcome, spec, in_fit: bool, oi_weight: float = 0.0) -> dict:
    return {"event": o.event, "venue": spec.venue, "asset": spec.asset,
            "real_share": round(o.real_share, 6), "simulated_share": round(o.share, 6),
            "ratio": round(o.ratio, 4),
            "real_long_share": (round(o.real_long_share, 4)
                                if o.real_long_share is not None else None),
            "simulated_long_share": round(o.long_share, 4) if math.isfinite(o.long_share)
            else None,
            "real_oi_change": (round(o.real_oi_change, 4)
                               if o.real_oi_change is not None else None),
            "simulated_oi_change": round(o.oi_change, 4) if math.isfinite(o.oi_change)
            else None, "in_fit": in_fit,
            "oi_change_in_fit": in_fit and oi_weight > 0 and o.real_oi_change is not None}


def calibrate_file(config: str | Path, output: str | Path, max_evaluations: int | None = None,
                   leave_one_out: bool = True, store=None, console: Console | None = None
                   ) -> tuple[FitResult, list]:
    """Run a calibration file end to end (see :mod:`backtest.calibration.fit`).

    Parameters
    ----------
    config, output : str or Path
        Calibration file to read; calibrated parameter file to write.
    max_evaluations : int, optional
        Objective evaluations per fit.
    leave_one_out : bool
        Also refit without each event and report its error.
    store : str or Path, optional
        Tape store.
    console : rich Console, optional
        Where the tables go.

    Returns
    -------
    FitResult or dict, list
        The full fit and the leave-one-out ``(outcome, fit)`` pairs; for a ``kind =
        "loan-state"`` file (:mod:`backtest.calibration.loan_state`) its ``[fit]`` table and
        an empty list.

    Raises
    ------
    ConfigError, TapeError
        Invalid file, missing target or tape.
    """
    console = console or Console()
    if is_loan_state(config):  # a lending book fitted to the protocol's state
        return calibrate_loan_state(config, output, store, console), []
    cfg = load_calibration(config)
    cal = Calibration.load(cfg, store=store)
    console.print(f"fitting {', '.join(cal.names)} on {len(cal.data)} events "
                  f"({cfg.accounts:,} accounts each, {cfg.interval_minutes}-minute candles) ...")
    full = cal.fit(max_evaluations=max_evaluations)
    loo = cal.leave_one_out(full) if leave_one_out and len(cal.data) > 1 else []
    book, response = _fitted(cal, full)
    # outcomes come in the order of the file's events (one event may list several assets)
    specs = [d.spec for d in cal.data]
    rows = [_row(o, s, True, cfg.open_interest_weight)
            for o, s in zip(full.outcomes, specs, strict=True)]
    spread = cal.seed_spread(list(full.values.values())) if cfg.seed_spread else []
    for row, (mean, cv) in zip(rows, spread, strict=False):  # no spread: no seeds asked
        row["ratio_other_seeds_mean"] = round(mean, 4)
        if math.isfinite(cv):
            row["ratio_other_seeds_cv"] = round(cv, 4)
    held = [dict(_row(o, s, False), objective_without=round(f.objective, 6),
                 **{f"fitted_{k}": round(v, 6) for k, v in f.values.items()})
            for (o, f), s in zip(loo, specs, strict=False)]
    fit = {"config": str(config), "policy": cfg.policy, "accounts": cfg.accounts,
           "seed": cfg.seed, "interval_minutes": cfg.interval_minutes,
           "fill_price": cfg.execution.fill_price, "tape_venue": cfg.tape_venue,
           "open_interest_weight": cfg.open_interest_weight,
           "timing_weight": cfg.timing_weight, "grid_points": cfg.grid_points,
           "objective": round(full.objective, 6), "evaluations": full.evaluations,
           "seconds": round(full.seconds + sum(f.seconds for _, f in loo), 1),
           "fitted": list(cal.names),
           **{f"fitted_{k}": round(v, 6) for k, v in full.values.items()},
           "held_out_targets": list(cfg.held_out_targets)}
    command = command_line(f"calibrate_file({str(config)!r}) in Python")
    products = frozenset(p for p, held in (("perp", cal.base.loan_fraction < 1.0),
                                             ("loan", cal.base.loan_fraction > 0.0)) if held)
    timing = timing_rows(full.outcomes, assets=[d.spec.asset for d in cal.data],
                         products=products, held_out=frozenset(cfg.held_out_targets))
    write_calibrated(output, book, response, fit, rows, held,
                     f"Calibrated by `{command}`\nfrom {config}: do not edit by hand; refit.",
                     timing)
    _print(console, cal, full, loo, rows)
    _print_timing(console, timing)
    console.print(f"wrote {output} ({fit['seconds']:.0f} s)")
    return full, loo


def _fitted(cal: Calibration, full: FitResult):
    from backtest.calibration.fit import apply

    book, response = apply(cal.base, cal.response, cal.names, list(full.values.values()))
    if response.enabled is None:
        response = response.model_copy(update={"enabled": False})
    # the perp levels were fitted in the as-happened policy's health: stated at its rate, they
    # keep their equity meaning under any other policy (ResponseConfig)
    response = response.model_copy(update={
        "perp_reference_maintenance_rate": cal.policy.perp.maintenance_margin_rate})
    return book, ResponseConfig.model_validate(response.model_dump())


def _print_timing(console: Console, timing: list[dict]) -> None:
    table = Table(title="timing: when the full fit's liquidations happen")
    for col in ("event", "after the low", "published window", "real", "simulated", "target"):
        table.add_column(col, justify="left" if col in ("event", "published window") else "right")
    for row in timing:
        windows = [k for k in range(10) if f"window_{k}_venue" in row] or [None]
        for k in windows:
            table.add_row(f"{row['event']} {row.get('asset', '')}".strip(),
                          f"{row['simulated_share_after_low']:.0%}",
                          "-" if k is None else
                          f"{row[f'window_{k}_venue']} {row.get(f'window_{k}_utc', '')}".strip(),
                          "-" if k is None else f"{row[f'window_{k}_real_fraction']:.0%}",
                          "-" if k is None else f"{row[f'window_{k}_simulated_fraction']:.0%}",
                          "held out" if k is not None and row.get(f"window_{k}_held_out")
                          else "-")
    console.print(table)


def _print(console: Console, cal: Calibration, full: FitResult, loo: list, rows: list) -> None:
    level = {"collateral_usd": "collateral", "borrowed_usd": "borrowings"}.get(
        size_measure(cal.base), "open interest")
    table = Table(title=f"liquidated share of {level}: real vs simulated")
    for col in ("event", "target", "real", "fit (in sample)", "ratio", "other seeds",
                "left out", "ratio ", "long share real / sim / left out",
                "OI after/before real / sim"):
        table.add_column(col, justify="left" if col in ("event", "target") else "right")
    held = [o for o, _ in loo] or [None] * len(cal.data)
    for d, o, h, row in zip(cal.data, full.outcomes, held, rows, strict=True):
        other = "-"
        if "ratio_other_seeds_mean" in row:
            other = f"{row['ratio_other_seeds_mean']:.2f}x" + (
                f" ± {row['ratio_other_seeds_cv']:.0%}" if "ratio_other_seeds_cv" in row else "")
        table.add_row(o.event, f"{d.spec.venue} {d.spec.asset}", f"{o.real_share:.2%}",
                      f"{o.share:.2%}", f"{o.ratio:.2f}x", other,
                      f"{h.share:.2%}" if h else "-", f"{h.ratio:.2f}x" if h else "-",
                      (f"{o.real_long_share:.0%} / " if o.real_long_share else "- / ")
                      + " / ".join(f"{x.long_share:.0%}" if x and math.isfinite(x.long_share)
                                   else "-" for x in (o, h)),
                      (f"{o.real_oi_change:.2f} / " if o.real_oi_change else "- / ")
                      + (f"{o.oi_change:.2f}" if math.isfinite(o.oi_change) else "-"))
    console.print(table)
    console.print("fitted: " + ", ".join(f"{k} = {v:.4g}" for k, v in full.values.items())
                  + f"; objective {full.objective:.4f} after {full.evaluations} evaluations")
