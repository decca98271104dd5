"""How late keepers were: a lower bound on each real liquidation's wait, from the oracle's path.

A lending protocol's liquidation at time ``t`` at oracle price ``p`` (collateral whose price
falls against stable debt) says the loan was liquidatable at ``p``. If nothing else changed
it was liquidatable, at the latest, from the first moment the oracle read ``p`` or lower since
the window started, or since the same account's previous liquidation (which changed the loan).
``t`` minus that moment is a **lower bound** on how long keepers left the loan: the loan may
have been liquidatable earlier still, at a higher price. The distribution of these bounds,
weighted by what each liquidation seized, is what a run's ``[keepers] latency_minutes`` (or an
ensemble's latency range) stands for (``docs/calibration.md``, "How late keepers were").

The oracle's path is a tape in the store (a protocol's feed imported with ``liqbt data
import-feed``): the first candle whose low is at or below ``p`` gives the moment, to the
candle (so use 1-minute candles).

Input: a CSV, Parquet or JSON file of liquidations, one row each, with columns ``time``
(epoch seconds or milliseconds, or ISO 8601), ``account`` (any label), ``price`` (the oracle
price of the collateral at the liquidation, the tape's quote per unit) and ``value`` (the
weight: USD seized, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.errors import TapeError
from backtest.records import positive_numbers, read_records
from backtest.tapes.schema import parse_time_strings, read_bytes

COLUMNS = ("time", "account", "price", "value")
#: Value-weighted quantiles reported, and the wait thresholds (minutes) of the shares reported.
QUANTILES = (0.5, 0.75, 0.9)
WITHIN_MINUTES = 2.0
OVER_MINUTES = 60.0


def read_liquidations(path: str | Path) -> dict[str, np.ndarray]:
    """Read a liquidations file (module docstring).

    Returns
    -------
    dict
        ``time`` (int64 epoch ms), ``account`` (object), ``price`` and ``value`` (float64),
        each shape (N,), in file order.

    Raises
    ------
    TapeError
        Unreadable file, a missing column, a time that is not a date-time, or a price or value
        that is not a positive number (the message names the row).
    """
    path = Path(path)
    try:
        frame = read_records(path, read_bytes(path), "liquidations")
    except ValueError as exc:
        raise TapeError(str(exc), path) from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing or frame.height == 0:
        raise TapeError(f"need columns {', '.join(COLUMNS)} and at least one row (missing: "
                        f"{', '.join(missing) or 'rows'})", path)
    out = {"time": parse_time_strings(frame["time"].cast(str), path, "time"),
           "account": frame["account"].cast(str).to_numpy()}
    try:
        for name in ("price", "value"):
            out[name] = positive_numbers(frame[name], name)
    except ValueError as exc:
        raise TapeError(str(exc), path) from None
    return out


def keeper_delays(time_ms: np.ndarray, account: np.ndarray, price: np.ndarray,
                  candle_ms: np.ndarray, candle_low: np.ndarray, start_ms: int) -> np.ndarray:
    """Return each liquidation's lower-bound wait (module docstring), minutes.

    Parameters
    ----------
    time_ms : ndarray, shape (N,), int64
        Liquidation times, epoch ms.
    account : ndarray, shape (N,)
        Account labels (a repeated label is the same loan).
    price : ndarray, shape (N,), float64
        Oracle price at each liquidation, quote per unit.
    candle_ms, candle_low : ndarray, shape (T,)
        The oracle tape's candle starts (epoch ms, increasing) and lows.
    start_ms : int
        Window start, epoch ms.

    Returns
    -------
    ndarray, shape (N,), float64
        Minutes, >= 0, in input order. A liquidation whose price the tape never reached before
        it (a price above the loan's own, say) waits 0.
    """
    delays = np.zeros(len(time_ms))
    previous: dict = {}
    for i in np.argsort(time_ms, kind="stable"):
        since = max(start_ms, previous.get(account[i], start_ms))
        k = max(int(np.searchsorted(candle_ms, since, side="right")) - 1, 0)
        stop = int(np.searchsorted(candle_ms, time_ms[i], side="right"))
        hit = np.flatnonzero(candle_low[k:stop] <= price[i])
        if hit.size:
            delays[i] = max(time_ms[i] - max(int(candle_ms[k + hit[0]]), since), 0) / 60_000
        previous[account[i]] = int(time_ms[i])
    return delays


@dataclass(frozen=True)
class DelaySummary:
    """Value-weighted distribution of the lower-bound waits of one window's liquidations."""

    count: int
    value: float
    within: float  # share of the value waiting at most WITHIN_MINUTES
    quantiles: tuple[float, ...]  # minutes, at QUANTILES
    over: float  # share of the value waiting more than OVER_MINUTES


def summarize(delays: np.ndarray, value: np.ndarray) -> DelaySummary:
    """Return the value-weighted summary of ``delays`` (minutes) weighted by ``value``.

    Raises
    ------
    ValueError
        No liquidation (empty arrays).
    """
    if delays.size == 0:
        raise ValueError("no liquidation to summarize")
    order = np.argsort(delays, kind="stable")
    cum = np.cumsum(value[order]) / value.sum()
    q = tuple(float(delays[order][min(np.searchsorted(cum, x), delays.size - 1)])
              for x in QUANTILES)
    return DelaySummary(int(delays.size), float(value.sum()),
                        float(value[delays <= WITHIN_MINUTES].sum() / value.sum()), q,
                        float(value[delays > OVER_MINUTES].sum() / value.sum()))
