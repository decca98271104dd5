"""Binance USDⓈ-M futures margin, liquidation price and ADL ranking (floats, USDT).

Sources (documentation pages): https://www.binance.com/en/support/faq/360033525271 "Liquidation
Protocols" and the liquidation-price calculation example, FAQ 360033525471 "What Is
Auto-Deleveraging (ADL)", dev.binance.vision thread 17801 (ADL formula); freqtrade
``freqtrade/exchange/binance.py`` ``dry_run_liquidation_price`` and
``binance_leverage_tiers.json`` (BTCUSDT brackets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Bracket",
    "BTCUSDT_BRACKETS",
    "cumulative_amounts",
    "bracket_for",
    "maintenance_margin",
    "margin_ratio",
    "cross_other_positions_term",
    "liquidation_price",
    "adl_leverage_pnl",
]


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin bracket of a symbol.

    Attributes
    ----------
    min_notional, max_notional : float
        Notional range in USDT, ``[min, max)``.
    mmr : float
        Maintenance margin rate (fraction, ``0.004`` = 0.40%).
    max_leverage : float
        Maximum leverage in the bracket.
    cum : float
        Maintenance amount, USDT.
    """

    min_notional: float
    max_notional: float
    mmr: float
    max_leverage: float
    cum: float


BTCUSDT_BRACKETS = (  # freqtrade exchange/binance_leverage_tiers.json
    Bracket(0.0, 50_000.0, 0.004, 125.0, 0.0),
    Bracket(50_000.0, 600_000.0, 0.005, 100.0, 50.0),
    Bracket(600_000.0, 3_000_000.0, 0.0065, 75.0, 950.0),
    Bracket(3_000_000.0, 12_000_000.0, 0.01, 50.0, 11_450.0),
    Bracket(12_000_000.0, 70_000_000.0, 0.02, 25.0, 131_450.0),
)


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _nonneg(name: str, value: float) -> float:
    if _finite(name, value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def cumulative_amounts(mmrs: list[float], min_notionals: list[float]) -> list[float]:
    """Maintenance amounts ``cum`` that make the margin continuous across brackets.

    ``cum_0 = 0``, ``cum_k = cum_{k-1} + (mmr_k - mmr_{k-1}) * minNotional_k``.

    Parameters
    ----------
    mmrs : list of float
        Maintenance margin rates, bracket order.
    min_notionals : list of float
        Lower notional bound of each bracket, USDT.

    Returns
    -------
    list of float
        ``cum`` per bracket, USDT.

    Raises
    ------
    ValueError
        If the lists differ in length or hold non-finite or negative values.

    Notes
    -----
    Source: Binance leverage and margin table,
    https://www.binance.com/en/futures/trading-rules/perpetual/leverage-margin.
    """
    if len(mmrs) != len(min_notionals):
        raise ValueError("mmrs and min_notionals differ in length")
    out: list[float] = []
    for k, (rate, low) in enumerate(zip(mmrs, min_notionals, strict=True)):
        _nonneg("mmr", rate)
        _nonneg("min_notional", low)
        out.append(0.0 if k == 0 else out[-1] + (rate - mmrs[k - 1]) * low)
    return out


def bracket_for(notional: float, brackets: tuple[Bracket, ...] = BTCUSDT_BRACKETS) -> Bracket:
    """Bracket containing ``|notional|``.

    Parameters
    ----------
    notional : float
        Position notional, USDT.
    brackets : tuple of Bracket, default BTCUSDT_BRACKETS

    Returns
    -------
    Bracket

    Raises
    ------
    ValueError
        If the notional is not finite or beyond the last bracket.

    Notes
    -----
    Source: Binance leverage and margin table.
    """
    size = abs(_finite("notional", notional))
    for b in brackets:
        if b.min_notional <= size < b.max_notional:
            return b
    raise ValueError(f"notional {size} is beyond the last bracket")


def maintenance_margin(notional: float, brackets: tuple[Bracket, ...] = BTCUSDT_BRACKETS) -> float:
    """Maintenance margin: ``|notional| * mmr - cum`` of the position's bracket, USDT.

    Parameters
    ----------
    notional : float
        Position notional at the mark price, USDT.
    brackets : tuple of Bracket, default BTCUSDT_BRACKETS

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`bracket_for`.

    Notes
    -----
    Source: Binance FAQ "Liquidation Protocols"; freqtrade ``binance.py``.
    """
    b = bracket_for(notional, brackets)
    return abs(notional) * b.mmr - b.cum


def margin_ratio(maintenance_margin_usdt: float, margin_balance: float) -> float:
    """Account margin ratio ``MM / margin balance``; liquidation when it reaches 100%.

    Parameters
    ----------
    maintenance_margin_usdt : float
        Maintenance margin, USDT.
    margin_balance : float
        Wallet balance plus unrealised PnL, USDT.

    Returns
    -------
    float
        Fraction; ``inf`` when the margin balance is <= 0.

    Raises
    ------
    ValueError
        If an argument is not finite or the margin is negative.

    Notes
    -----
    Source: Binance FAQ "Liquidation Protocols".
    """
    _nonneg("maintenance_margin_usdt", maintenance_margin_usdt)
    if _finite("margin_balance", margin_balance) <= 0:
        return math.inf
    return maintenance_margin_usdt / margin_balance


def cross_other_positions_term(
    positions: list[tuple[float, float, float, float, float]],
) -> float:
    """``sum(UPnL - MM)`` over the *other* positions of a cross-margin wallet.

    Parameters
    ----------
    positions : list of tuple
        ``(amount, entry_price, mark_price, mmr, cum)`` per other position; ``amount`` is
        signed (negative for a short), prices in USDT.

    Returns
    -------
    float
        USDT (``TMM_others_adj`` of :func:`liquidation_price`).

    Raises
    ------
    ValueError
        If a value is not finite.

    Notes
    -----
    Source: freqtrade ``binance.py`` (``upnl_ex_1 - mm_ex_1``), Binance liquidation-price
    example (``TMM1``, ``UPNL1``).
    """
    total = 0.0
    for amount, entry, mark, rate, cum in positions:
        amount = _finite("amount", amount)
        entry = _finite("entry", entry)
        mark = _finite("mark", mark)
        mm = abs(amount) * mark * _nonneg("mmr", rate) - _nonneg("cum", cum)
        total += amount * (mark - entry) - mm
    return total


def liquidation_price(
    wallet_balance: float,
    amount: float,
    entry_price: float,
    mmr: float,
    cum: float,
    is_short: bool,
    other_positions_term: float = 0.0,
) -> float:
    """One-way-mode liquidation price (isolated, or cross with other positions).

    ``LP = (WB + TMM_others_adj + cum - side * Q * EP) / (Q * mmr - side * Q)``.

    Parameters
    ----------
    wallet_balance : float
        Isolated wallet balance of the position (isolated) or cross wallet balance, USDT.
    amount : float
        Position size ``Q``, base units, ``> 0``.
    entry_price : float
        ``EP``, USDT.
    mmr, cum : float
        Maintenance rate and amount of the position's bracket.
    is_short : bool
        Side (``side = -1`` for a short).
    other_positions_term : float, default 0
        ``sum(UPnL - MM)`` of the other cross positions (:func:`cross_other_positions_term`);
        0 in isolated mode.

    Returns
    -------
    float
        USDT per unit of base.

    Raises
    ------
    ValueError
        If an argument is not finite, ``amount <= 0`` or ``mmr == 1``.

    Notes
    -----
    Source: Binance liquidation-price FAQ example, as coded in freqtrade ``binance.py``
    ``dry_run_liquidation_price``. The bracket must be the one of the position at the
    liquidation price; check with :func:`bracket_for` and iterate if it differs.
    """
    side = -1.0 if is_short else 1.0
    q = _finite("amount", amount)
    if q <= 0:
        raise ValueError("amount must be > 0")
    denominator = q * _nonneg("mmr", mmr) - side * q
    if denominator == 0:
        raise ValueError("mmr of 1 makes the liquidation price undefined")
    return (_finite("wallet_balance", wallet_balance) + _finite("other_positions_term",
                                                                 other_positions_term)
            + _nonneg("cum", cum) - side * q * _finite("entry_price", entry_price)) / denominator


def adl_leverage_pnl(unrealized_pnl: float, wallet_balance: float,
                     maintenance_margin_usdt: float) -> float:
    """ADL ranking score ``LeveragePnL = PnL% * marginRatio``.

    Parameters
    ----------
    unrealized_pnl : float
        USDT.
    wallet_balance : float
        USDT.
    maintenance_margin_usdt : float
        USDT.

    Returns
    -------
    float
        ``max(0, UPnL) / max(1, WB) * (MM / (WB + UPnL) if WB + UPnL > 0 else 0)``; traders are
        ranked by the quantile of this score, highest first.

    Raises
    ------
    ValueError
        If an argument is not finite or the margin is negative.

    Notes
    -----
    Source: Binance FAQ 360033525471 "What Is Auto-Deleveraging (ADL)", formula at the end of
    the page (reproduced in dev.binance.vision thread 17801).
    """
    upnl = _finite("unrealized_pnl", unrealized_pnl)
    wb = _finite("wallet_balance", wallet_balance)
    mm = _nonneg("maintenance_margin_usdt", maintenance_margin_usdt)
    pnl_pct = max(0.0, upnl) / max(1.0, wb)
    ratio = mm / (wb + upnl) if wb + upnl > 0 else 0.0
    return pnl_pct * ratio
