"""Synthetic options books: seeded accounts long and short European calls and puts.

Every draw comes from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order, so the same
start, prices, volatilities, parameters and seed give the same book, bit for bit. Each account
trades options on one underlying; distributions (defaults in :class:`OptionsBookParams`,
discussed in ``docs/options.md``):

- **underlying**: drawn by ``underlying_weights`` (default BTC 70%, ETH 30%: the two
  underlyings of Deribit's option volume).
- **strategy**: drawn by ``strategy_weights`` from :data:`STRATEGIES`: naked short puts and
  calls, short strangles and straddles, long calls and puts, and put / call credit spreads.
  Sellers of options (the accounts that can be liquidated) are the majority by default.
- **expiry**: the kind (daily, weekly, monthly, quarterly) by ``expiry_weights``, then one of
  the next ``listed`` expiries of that kind, uniformly, among those at least
  ``min_hours_to_expiry`` after the start. Expiries are at 08:00 UTC (Deribit's listing:
  dailies every day, weeklies on Fridays, monthlies on the last Friday of a month, quarterlies
  on the last Friday of March, June, September and December).
- **strike**: out-of-the-money legs at ``F x exp(+-z x sigma x sqrt(tau))`` (above F for
  calls, below for puts), ``z = |N(otm_z_mean, otm_z_sd)|`` standard deviations of the move to
  expiry; straddles at the money; the protective long leg of a credit spread
  ``spread_width_z`` further out. Strikes are rounded to the listed strike step of the
  underlying (``strike_steps``) and kept at least one step apart within a spread.
- **size**: the underlying notional ``|quantity| x F`` is lognormal (median
  ``notional_median_usd``, log-sd ``notional_sigma``), clipped to ``[min_notional_usd,
  max_notional_usd]``; the same quantity on every leg of an account.
- **cash**: accounts with a short leg post equity ``(1 + cushion) x maintenance margin`` at the
  start, ``cushion ~ Gamma(cushion_shape, cushion_scale)`` (default mean 0.8, mode 0.4);
  long-only accounts hold ``Uniform(0, long_cash_max) x premium`` of cash (never borrowed).
  So every account is healthy at the start (equity >= margin), and the book needs no
  survivorship step: it is drawn at the window's start from the prices and volatilities then.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from backtest.errors import BookError
from backtest.options.book import OptionsBook, validate_options_book
from backtest.options.params import OptionsParams
from backtest.strict import StrictModel

#: Strategy name -> legs as (option type, side, strike role); role ``otm`` = the first
#: out-of-the-money strike, ``wing`` = spread_width_z further out, ``atm`` = at the money.
STRATEGIES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "short_put": (("put", -1, "otm"),),
    "short_call": (("call", -1, "otm"),),
    "short_strangle": (("put", -1, "otm"), ("call", -1, "otm")),
    "short_straddle": (("put", -1, "atm"), ("call", -1, "atm")),
    "long_call": (("call", 1, "otm"),),
    "long_put": (("put", 1, "otm"),),
    "put_credit_spread": (("put", -1, "otm"), ("put", 1, "wing")),
    "call_credit_spread": (("call", -1, "otm"), ("call", 1, "wing")),
}
EXPIRY_KINDS = ("daily", "weekly", "monthly", "quarterly")
_HOUR_MS = 3_600_000


class OptionsBookParams(StrictModel):
    """Parameters of the synthetic options book (fractions, USD, hours).

    Attributes
    ----------
    underlying_weights : dict of str to float
        Relative weights of the underlyings.
    strategy_weights : dict of str to float
        Relative weights of :data:`STRATEGIES` (missing ones weigh 0).
    expiry_weights : dict of str to float
        Relative weights of the expiry kinds ``daily``, ``weekly``, ``monthly``,
        ``quarterly``.
    listed : int
        How many upcoming expiries of each kind are listed (drawn uniformly).
    min_hours_to_expiry : float
        Listed expiries are at least this long after the start.
    otm_z_mean, otm_z_sd : float
        Out-of-the-money distance in standard deviations of the move to expiry.
    spread_width_z : float
        Extra distance of a credit spread's long leg, standard deviations.
    strike_steps : dict of str to float
        Listed strike spacing per underlying, USD (default step for others: 1% of F).
    notional_median_usd, notional_sigma : float
        Lognormal underlying notional per account: median (USD) and log-sd.
    min_notional_usd, max_notional_usd : float
        Clip bounds of the notional, USD.
    cushion_shape, cushion_scale : float
        Gamma distribution of equity / maintenance margin - 1 of accounts with a short leg.
    long_cash_max : float
        Long-only accounts hold up to this multiple of their premium in cash.
    """

    underlying_weights: dict[str, float] = {"BTC": 0.7, "ETH": 0.3}
    strategy_weights: dict[str, float] = {
        "short_put": 0.25, "short_call": 0.10, "short_strangle": 0.15, "short_straddle": 0.05,
        "long_call": 0.12, "long_put": 0.12, "put_credit_spread": 0.11,
        "call_credit_spread": 0.10,
    }
    expiry_weights: dict[str, float] = {"daily": 0.15, "weekly": 0.35, "monthly": 0.30,
                                        "quarterly": 0.20}
    listed: int = Field(3, ge=1, le=12)
    min_hours_to_expiry: float = Field(2.0, ge=0.0)
    otm_z_mean: float = Field(0.8, ge=0.0)
    otm_z_sd: float = Field(0.5, ge=0.0)
    spread_width_z: float = Field(0.6, gt=0.0)
    strike_steps: dict[str, float] = {"BTC": 1000.0, "ETH": 50.0}
    notional_median_usd: float = Field(25_000.0, gt=0)
    notional_sigma: float = Field(1.3, ge=0)
    min_notional_usd: float = Field(100.0, gt=0)
    max_notional_usd: float = Field(10_000_000.0, gt=0)
    cushion_shape: float = Field(2.0, gt=0)
    cushion_scale: float = Field(0.4, gt=0)
    long_cash_max: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> OptionsBookParams:
        for name, weights, allowed in (("strategy_weights", self.strategy_weights, STRATEGIES),
                                       ("expiry_weights", self.expiry_weights, EXPIRY_KINDS)):
            unknown = [k for k in weights if k not in allowed]
            if unknown:
                raise ValueError(f"{name}: unknown {unknown}; choose from {list(allowed)}")
        for name, weights in (("underlying_weights", self.underlying_weights),
                              ("strategy_weights", self.strategy_weights),
                              ("expiry_weights", self.expiry_weights)):
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"{name} must be >= 0 and not all zero")
        if self.min_notional_usd >= self.max_notional_usd:
            raise ValueError("min_notional_usd must be < max_notional_usd")
        return self


def listed_expiries(start: datetime, kind: str, count: int, min_hours: float = 0.0
                    ) -> list[datetime]:
    """Return the next ``count`` expiries of a kind after ``start`` (08:00 UTC, Deribit style).

    Parameters
    ----------
    start : datetime
        Timezone-aware (naive is taken as UTC).
    kind : {"daily", "weekly", "monthly", "quarterly"}
    count : int
    min_hours : float
        Only expiries at least this many hours after ``start``.

    Returns
    -------
    list of datetime
        Increasing, UTC.
    """
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    earliest = start + timedelta(hours=min_hours)
    day = datetime(start.year, start.month, start.day, 8, tzinfo=UTC)
    out: list[datetime] = []
    while len(out) < count:
        if day > earliest and _is_kind(day, kind):
            out.append(day)
        day += timedelta(days=1)
    return out


def _is_kind(day: datetime, kind: str) -> bool:
    if kind == "daily":
        return True
    if day.weekday() != 4:  # Friday
        return False
    last_friday = (day + timedelta(days=7)).month != day.month
    if kind == "weekly":
        return True
    if kind == "monthly":
        return last_friday
    return last_friday and day.month in (3, 6, 9, 12)


def _weights(mapping: dict[str, float], keys) -> np.ndarray:
    w = np.array([float(mapping.get(k, 0.0)) for k in keys])
    return w / w.sum()


def generate_options_book(
    n_accounts: int,
    start: datetime,
    price: dict[str, float],
    iv: dict[str, float],
    seed: int,
    params: OptionsBookParams | None = None,
    options: OptionsParams | None = None,
    meta: dict[str, str] | None = None,
) -> OptionsBook:
    """Draw a synthetic options book of ``n_accounts`` accounts open at ``start``.

    Parameters
    ----------
    n_accounts : int
        Number of accounts, > 0.
    start : datetime
        Valuation time of the book (the window's start), UTC.
    price : dict of str to float
        Underlying price at ``start`` for every underlying with a positive weight, USD.
    iv : dict of str to float
        Implied volatility at ``start`` per underlying, annualised fraction.
    seed : int
        Seed of the PCG64 generator.
    params : OptionsBookParams, optional
        Distributions; default :class:`OptionsBookParams`.
    options : OptionsParams, optional
        Margin model used to size the cash of accounts with short legs.
    meta : dict, optional
        Extra ``liqbt.*`` metadata (e.g. the event).

    Returns
    -------
    OptionsBook
        Validated; account ids ``0..n_accounts-1``.

    Raises
    ------
    BookError
        If ``n_accounts`` <= 0 or a weighted underlying has no positive price or iv.
    """
    from backtest.options.margin import account_risk  # the margin needs the book arrays

    params = params or OptionsBookParams()
    options = options or OptionsParams()
    if n_accounts <= 0:
        raise BookError(f"need at least one account, got {n_accounts}")
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    unds = [u for u, w in params.underlying_weights.items() if w > 0]
    for u in unds:
        if not (price.get(u, 0) > 0 and iv.get(u, 0) > 0):
            raise BookError(f"underlying {u}: need a positive price and implied volatility at "
                            f"the start (got price {price.get(u)}, iv {iv.get(u)})")
    rng = np.random.Generator(np.random.PCG64(seed))
    n = n_accounts
    names = list(STRATEGIES)
    und = rng.choice(len(unds), size=n, p=_weights(params.underlying_weights, unds))
    strat = rng.choice(len(names), size=n, p=_weights(params.strategy_weights, names))
    kind = rng.choice(len(EXPIRY_KINDS), size=n, p=_weights(params.expiry_weights,
                                                            EXPIRY_KINDS))
    pick = rng.integers(0, params.listed, size=n)
    z = np.abs(rng.normal(params.otm_z_mean, params.otm_z_sd, size=(n, 2)))
    notional = np.clip(params.notional_median_usd * np.exp(rng.normal(0, params.notional_sigma,
                                                                      n)),
                       params.min_notional_usd, params.max_notional_usd)
    cushion = rng.gamma(params.cushion_shape, params.cushion_scale, size=n)
    long_cash = rng.uniform(0.0, params.long_cash_max, size=n)

    start_ms = int(start.timestamp() * 1000)
    exp_table = np.array([[int(d.timestamp() * 1000) for d in
                           listed_expiries(start, k, params.listed, params.min_hours_to_expiry)]
                          for k in EXPIRY_KINDS], dtype=np.int64)
    expiry = exp_table[kind, pick]
    tau = (expiry - start_ms) / (365.0 * 86400.0 * 1000.0)
    f = np.array([price[u] for u in unds])[und]
    sigma = np.array([iv[u] for u in unds])[und]
    step = np.array([params.strike_steps.get(u, 0.0) for u in unds])[und]
    step = np.where(step > 0, step, 0.01 * f)
    move = sigma * np.sqrt(tau)
    qty = notional / f

    rows: dict[str, list] = {k: [] for k in ("account_id", "underlying", "option_type",
                                             "strike", "expiry", "quantity")}
    for s, legs in enumerate(STRATEGIES.values()):
        idx = np.flatnonzero(strat == s)
        if idx.size == 0:
            continue
        first_strike = None
        for leg, (otype, side, role) in enumerate(legs):
            sign = 1.0 if otype == "call" else -1.0
            if role == "atm":
                k = np.round(f[idx] / step[idx]) * step[idx]
            elif role == "otm":
                k = _round_out(f[idx] * np.exp(sign * z[idx, leg] * move[idx]), step[idx], sign)
            else:  # wing: further out than the short leg, at least one strike step
                raw = first_strike * np.exp(sign * params.spread_width_z * move[idx])
                k = _round_out(raw, step[idx], sign)
                k = np.where(sign > 0, np.maximum(k, first_strike + step[idx]),
                             np.minimum(k, first_strike - step[idx]))
            k = np.maximum(k, step[idx])
            if leg == 0:
                first_strike = k
            rows["account_id"].append(idx)
            rows["underlying"].append(np.array(unds, dtype=object)[und[idx]])
            rows["option_type"].append(np.full(idx.size, otype, dtype=object))
            rows["strike"].append(k)
            rows["expiry"].append(expiry[idx])
            rows["quantity"].append(side * qty[idx])
    frame = pl.DataFrame({
        "account_id": np.concatenate(rows["account_id"]).astype(np.int64),
        "underlying": np.concatenate(rows["underlying"]).astype(str),
        "option_type": np.concatenate(rows["option_type"]).astype(str),
        "strike": np.concatenate(rows["strike"]).astype(np.float64),
        "expiry": pl.Series(np.concatenate(rows["expiry"])).cast(pl.Datetime("ms", "UTC")),
        "quantity": np.concatenate(rows["quantity"]).astype(np.float64),
        "cash_usd": np.zeros(sum(len(a) for a in rows["account_id"])),
    })
    # legs sharing a strike (a straddle rounded onto one strike is two instruments: put and
    # call; a strangle rounded onto the money is a straddle) stay distinct by option type
    frame = validate_options_book(frame)
    book = OptionsBook(frame, {})
    arrays = book.arrays(unds)
    risk = account_risk(arrays, [price[u] for u in unds], [iv[u] for u in unds], start_ms,
                        options)
    value = risk.equity  # cash is 0 here: equity = mark value of the legs
    has_short = np.zeros(n, dtype=bool)
    np.logical_or.at(has_short, np.searchsorted(arrays.account_id,
                                                frame["account_id"].to_numpy()),
                     frame["quantity"].to_numpy() < 0)
    cash = np.where(has_short, (1.0 + cushion) * risk.maintenance_margin - value,
                    long_cash * value)
    cash_of = pl.DataFrame({"account_id": arrays.account_id, "cash_usd": cash})
    frame = frame.drop("cash_usd").join(cash_of, on="account_id", how="left").select(
        list(frame.columns))
    info = {
        "generator": "backtest.options.generate",
        "seed": str(seed),
        "start": start.isoformat(),
        "price": json.dumps(price),
        "iv": json.dumps(iv),
        "params": params.model_dump_json(),
        "options": options.model_dump_json(),
        **(meta or {}),
    }
    return OptionsBook(validate_options_book(frame), info)


def _round_out(k: np.ndarray, step: np.ndarray, sign: float) -> np.ndarray:
    """Round strikes to the listed step, away from the money (up for calls, down for puts)."""
    return (np.ceil(k / step) if sign > 0 else np.floor(k / step)) * step
