"""When liquidations happen inside a crash: simulated profile against the public timing figures.

Two checks per event, from a calibration's outcomes
(:class:`backtest.calibration.fit.EventOutcome`):

- **after the low**: the share of the simulated liquidated notional in the steps after the
  window's lowest low (a book that stands still stops liquidating at the low; real ones did
  not, because positions kept opening and re-levering on the way down and after);
- **inside a published sub-window**: where a venue published its liquidations both for a short
  window inside the event (e.g. Hyperliquid's 12-minute cascade, 2025-10-10 21:15-21:27 UTC) and
  for a longer one (its 24 hours), the real fraction ``short / long`` (geometric middles of the
  ranges) against the simulated fraction over the same two windows. The simulated book stands
  for the whole market on one tape, so this compares the *shape* of the day, not the venue.
"""

from __future__ import annotations

import math

from backtest.calibration.formatting import utc_minute
from backtest.targets import Target, load_targets, nested_windows


def _ms(t) -> int:
    return int(t.timestamp() * 1000)


def sub_windows(event: str, targets: list[Target] | None = None,
                products: frozenset[str] | None = None) -> list[dict]:
    """Return the published (inner, outer) liquidation windows of each venue in an event.

    ``products`` (``perp``, ``loan``) keeps the windows of venues of those products only: a
    perp book's day is held against perp venues' timing, not a lending market's, whose
    liquidations follow its oracle and threshold instead (None: every product).

    Returns
    -------
    list of dict
        ``venue``, ``asset``, ``inner`` and ``outer`` (epoch-ms pairs), ``real_fraction``,
        ``source`` (the inner target's address), ``keys`` (the two targets' ``"<event>/<id>"``),
        ``utc`` (the inner window, ``"2021-05-19 14:00 - 2021-05-20 00:00"``).
    """
    pool = [t for t in (targets or load_targets()) if t.event == event
            and (products is None or t.product in products)]
    out = []
    for inner, outer in nested_windows(pool):
        real = math.sqrt(inner.low * inner.high) / math.sqrt(outer.low * outer.high)
        out.append({"venue": inner.venue, "asset": inner.asset,
                    "inner": (_ms(inner.window_start), _ms(inner.window_end)),
                    "outer": (_ms(outer.window_start), _ms(outer.window_end)),
                    "real_fraction": real, "source": inner.source,
                    "keys": (inner.key, outer.key),
                    "utc": f"{utc_minute(inner.window_start)} - {utc_minute(inner.window_end)}"})
    return out


def timing_rows(outcomes, targets: list[Target] | None = None,
                assets: list[str] | None = None,
                products: frozenset[str] | None = None,
                held_out: frozenset[str] = frozenset()) -> list[dict]:
    """Return one row per event (and asset): share after the low, each sub-window's fractions.

    ``assets``, in the order of ``outcomes``, names the asset of each row where one event is
    calibrated on several assets (``None``: one row per event, no asset column); ``products``
    restricts the sub-windows to venues of the book's products (:func:`sub_windows`).
    ``held_out`` holds the ``"<event>/<id>"`` of targets the fit did not see (its
    ``held_out_targets``): a window built on one is reported with ``window_<k>_held_out``
    true, an out-of-sample check of the timing (the others entered the fit where its
    ``timing_weight`` is above 0 and the window is of the fitted venue and asset).
    """
    rows = []
    for o, asset in zip(outcomes, assets or [None] * len(outcomes), strict=True):
        row = {"event": o.event, "simulated_share_after_low": round(o.share_after_low, 4)}
        if asset is not None:
            row["asset"] = asset
        for k, w in enumerate(sub_windows(o.event, targets, products)):
            sim = o.fraction_within(w["inner"], w["outer"])
            row[f"window_{k}_venue"] = w["venue"]
            row[f"window_{k}_utc"] = w["utc"]
            row[f"window_{k}_real_fraction"] = round(w["real_fraction"], 4)
            row[f"window_{k}_simulated_fraction"] = round(sim, 4)
            row[f"window_{k}_held_out"] = bool(held_out.intersection(w["keys"]))
            row[f"window_{k}_source"] = w["source"]
        rows.append(row)
    return rows
