"""Implied volatility on a run's clock: Deribit DVOL where published, else realised + premium.

**DVOL** (Deribit's 30-day implied volatility index, in vol points) arrives as a daily
series ``[ts_ms, dvol]`` of daily closes. The value labelled day ``D`` (its timestamp, 00:00
UTC) is the close of that day, so it is only *known* at ``D + 1 day`` (the
``publication_lag_ms``). On the run's clock each step takes the **last close already
published at the step's open** (step-wise previous close). That never looks ahead:
interpolating between two daily closes (linearly in variance or otherwise) would need the
next close, which is published only at the end of the day being interpolated, so within a
day the tape is flat and it moves at 00:00 UTC by the day's change of DVOL. It is up to a day
stale, which in a crash (FTX, 2022-11-08..09: DVOL 57 -> 77 -> 115) understates the vol a
trader faced intra-day; the docs discuss the alternative of taking the larger of DVOL and
realised volatility.

**Realised volatility plus a premium** where DVOL is absent (before 2022-11-06, for ETH, or
with ``source="realized"``): the project's trailing realised volatility of close-to-close log
returns (:func:`backtest.tapes.volatility.realized_vol`, one day of candles by default),
taken from the *previous* step (the value at a step's open, so the step's own close is not
used), plus ``premium`` (a fraction: 0.10 = 10 vol points, :data:`DEFAULT_PREMIUM`) for the
variance risk premium by which implied volatility usually exceeds realised.

Units: volatility everywhere is an annualised fraction (DVOL 55.3 -> 0.553).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from backtest.errors import TapeError
from backtest.tapes.schema import epoch_to_ms, format_ts
from backtest.tapes.volatility import realized_vol

DAY_MS = 86_400_000
DVOL_PUBLICATION_LAG_MS = DAY_MS
"""A daily close labelled 00:00 of day D is known at the end of that day."""
DEFAULT_PREMIUM = 0.10
"""Default implied-minus-realised premium, vol as a fraction (10 vol points).

Measured on the shared data: BTC DVOL (step-wise, as here) minus the one-day realised
volatility of Binance 5-minute BTC/USDT closes, 2022-11-07 .. 2023-09-27 (93,515 steps):
mean 13.2, median 15.2 vol points. Rounded down because that period is mostly calm, and in a
crash realised volatility overshoots implied (up to 206% against a DVOL of 77-115 on
2022-11-09), so a large premium on top of it would overstate the implied volatility then."""

SOURCE_DVOL = 0
SOURCE_REALIZED = 1
SOURCE_NAMES = ("dvol", "realized")


def read_dvol_json(path: str | Path) -> pl.DataFrame:
    """Read a DVOL daily file: a JSON list of ``[timestamp, dvol]`` pairs.

    Parameters
    ----------
    path : str or Path
        JSON file; timestamps are epoch numbers (ms, or s / us / ns, detected by magnitude),
        values are DVOL in vol points (e.g. 56.76).

    Returns
    -------
    polars.DataFrame
        ``timestamp`` datetime[ms, UTC] (the label of each daily close), ``dvol`` float64 (vol
        points), strictly increasing in time.

    Raises
    ------
    TapeError
        Unreadable file, not JSON, not a list, a row that is not a pair of numbers, a value
        that is not a positive finite number of vol points (< 1000), or timestamps not
        strictly increasing; the message names the file and the row.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TapeError(f"cannot read the file: {exc.strerror or exc}", path) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TapeError(f"not valid JSON: {exc}", path) from None
    if not isinstance(data, list) or not data:
        raise TapeError("expected a non-empty JSON list of [timestamp_ms, dvol] pairs", path)
    ts = np.empty(len(data), dtype=np.float64)
    vol = np.empty(len(data), dtype=np.float64)
    for i, row in enumerate(data):
        ok = (isinstance(row, list | tuple) and len(row) == 2
              and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row))
        if not ok:
            raise TapeError(f"row {i}: expected [timestamp_ms, dvol], got {row!r}", path)
        ts[i], vol[i] = row
    bad = np.flatnonzero(~(np.isfinite(vol) & (vol > 0) & (vol < 1000)) | ~np.isfinite(ts))
    if bad.size:
        i = int(bad[0])
        raise TapeError(f"row {i}: dvol must be a positive number of vol points below 1000 "
                        f"(got {data[i][1]!r}); {bad.size} rows affected", path)
    ms = epoch_to_ms(ts)
    step = np.diff(ms)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise TapeError(f"row {i}: timestamps must be strictly increasing ({format_ts(ms[i])} "
                        f"after {format_ts(ms[i - 1])})", path)
    return pl.DataFrame({"timestamp": pl.Series(ms).cast(pl.Datetime("ms", "UTC")),
                         "dvol": vol})


def dvol_on_clock(dvol: pl.DataFrame, clock_ms: np.ndarray,
                  publication_lag_ms: int = DVOL_PUBLICATION_LAG_MS,
                  max_age_ms: int = 3 * DAY_MS) -> np.ndarray:
    """Put daily DVOL closes on a run's clock, step-wise, without lookahead.

    Parameters
    ----------
    dvol : polars.DataFrame
        From :func:`read_dvol_json`.
    clock_ms : ndarray, shape (T,), int64
        Step times (candle open times), epoch ms, increasing.
    publication_lag_ms : int
        Delay between a close's label and the moment it is known (default one day).
    max_age_ms : int
        A close published longer ago than this is stale (a gap in the file): NaN.

    Returns
    -------
    ndarray, shape (T,), float64
        Implied volatility as a fraction (DVOL / 100) of the last close published at or
        before each step time; NaN where none is published yet or the last is stale.
    """
    labels = dvol["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64)
    published = labels + np.int64(publication_lag_ms)
    values = dvol["dvol"].to_numpy().astype(np.float64) / 100.0
    clock = np.asarray(clock_ms, dtype=np.int64)
    k = np.searchsorted(published, clock, side="right") - 1
    out = np.full(clock.size, np.nan)
    ok = k >= 0
    out[ok] = values[k[ok]]
    stale = ok & (clock - published[np.maximum(k, 0)] > max_age_ms)
    out[stale] = np.nan
    return out


def realized_on_clock(close: np.ndarray, interval_seconds: int, premium: float = DEFAULT_PREMIUM,
                      window: int | None = None) -> np.ndarray:
    """Realised volatility known at each step's open, plus a premium.

    Parameters
    ----------
    close : ndarray, shape (T,), float64
        Candle closes of the underlying, in time order (include history before the window:
        the estimate needs ``window`` returns to settle).
    interval_seconds : int
        Candle length, seconds.
    premium : float
        Added to the realised volatility, fraction (0.10 = 10 vol points).
    window : int, optional
        Trailing returns per estimate; default one day of candles.

    Returns
    -------
    ndarray, shape (T,), float64
        ``realized_vol[t - 1] + premium`` (annualised fraction); NaN for the first 3 steps.
    """
    rv = realized_vol(close, interval_seconds, window)
    out = np.full(rv.size, np.nan)
    out[1:] = rv[:-1] + premium
    return out


@dataclass(frozen=True)
class ImpliedVolTape:
    """Implied volatility per step of a run's clock.

    Attributes
    ----------
    timestamp_ms : ndarray, shape (T,), int64
        Step times (candle open times), epoch ms.
    iv : ndarray, shape (T,), float64
        Annualised implied volatility, fraction, > 0.
    source : ndarray, shape (T,), int8
        ``SOURCE_DVOL`` (0) or ``SOURCE_REALIZED`` (1) per step.
    premium : float
        Premium added to realised volatility, fraction.
    """

    timestamp_ms: np.ndarray
    iv: np.ndarray
    source: np.ndarray
    premium: float

    def frame(self) -> pl.DataFrame:
        """Return ``timestamp`` (datetime ms UTC), ``iv`` (fraction), ``source`` (str)."""
        return pl.DataFrame({
            "timestamp": pl.Series(self.timestamp_ms).cast(pl.Datetime("ms", "UTC")),
            "iv": self.iv,
            "source": np.array(SOURCE_NAMES, dtype=object)[self.source].astype(str),
        })

    def window(self, start: int, stop: int) -> ImpliedVolTape:
        """Return steps ``start..stop-1``."""
        return ImpliedVolTape(self.timestamp_ms[start:stop], self.iv[start:stop],
                              self.source[start:stop], self.premium)


def implied_vol_tape(
    clock_ms: np.ndarray,
    close: np.ndarray,
    interval_seconds: int,
    dvol: pl.DataFrame | None = None,
    *,
    source: Literal["auto", "dvol", "realized"] = "auto",
    premium: float = DEFAULT_PREMIUM,
    window: int | None = None,
    publication_lag_ms: int = DVOL_PUBLICATION_LAG_MS,
    max_age_ms: int = 3 * DAY_MS,
    start: int = 0,
) -> ImpliedVolTape:
    """Build the implied-volatility tape of one underlying on a run's clock.

    Parameters
    ----------
    clock_ms : ndarray, shape (T,), int64
        Candle open times of the underlying's tape, epoch ms (with history before the run).
    close : ndarray, shape (T,), float64
        Candle closes of the same tape, USD.
    interval_seconds : int
        Candle length, seconds.
    dvol : polars.DataFrame, optional
        Daily DVOL (:func:`read_dvol_json`); ``None``: realised volatility only.
    source : {"auto", "dvol", "realized"}
        ``auto``: DVOL where a fresh close is published, else realised + premium; ``dvol``:
        DVOL only (error where missing); ``realized``: realised + premium only.
    premium : float
        Implied-minus-realised premium, fraction (>= 0).
    window : int, optional
        Realised-volatility window in returns; default one day of candles.
    publication_lag_ms, max_age_ms : int
        See :func:`dvol_on_clock`.
    start : int
        First step of the run: the returned tape covers ``start..T-1`` (earlier rows are
        history for the realised estimate).

    Returns
    -------
    ImpliedVolTape
        Steps ``start..T-1``.

    Raises
    ------
    TapeError
        If a step has no volatility: ``source="dvol"`` where DVOL is not published, or too
        little history for realised volatility; the message names the first such time.
    ValueError
        If the arrays differ in length or ``premium`` < 0.
    """
    clock = np.asarray(clock_ms, dtype=np.int64)
    close = np.asarray(close, dtype=np.float64)
    if clock.size != close.size:
        raise ValueError("clock_ms and close differ in length")
    if premium < 0:
        raise ValueError(f"premium must be >= 0, got {premium}")
    if source == "dvol" and dvol is None:
        raise TapeError("source 'dvol' needs a DVOL file")
    use_dvol = dvol is not None and source != "realized"
    iv_d = dvol_on_clock(dvol, clock, publication_lag_ms, max_age_ms) if use_dvol else \
        np.full(clock.size, np.nan)
    iv_r = realized_on_clock(close, interval_seconds, premium, window) if source != "dvol" \
        else np.full(clock.size, np.nan)
    from_dvol = np.isfinite(iv_d)
    iv = np.where(from_dvol, iv_d, iv_r)[start:]
    src = np.where(from_dvol, SOURCE_DVOL, SOURCE_REALIZED).astype(np.int8)[start:]
    bad = np.flatnonzero(~(iv > 0))
    if bad.size:
        t = format_ts(int(clock[start + bad[0]]))
        why = ("no DVOL close published by then" if source == "dvol" else
               "no fresh DVOL close and fewer than 2 returns of history for realised "
               "volatility (start the tape earlier than the run)")
        raise TapeError(f"no implied volatility at {t} (step {int(bad[0])}): {why}; "
                        f"{bad.size} steps affected")
    return ImpliedVolTape(clock[start:].copy(), iv, src, float(premium))
