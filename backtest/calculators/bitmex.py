"""BitMEX auto-deleveraging ranking and bankruptcy prices (floats).

Sources (documentation pages under https://www.bitmex.com/app/): ``/app/autoDeleveraging`` (ranking
formula), ``/app/autoDeleveragingExamples`` (ranked queue, quintiles, liquidated short of 20 at
USD 650), ``/app/isolatedMarginExamples`` (linear ETHUSDT example: liquidation and bankruptcy
prices 510 and 500), ``/app/liquidation``, ``/app/liquidationExamples`` (the liquidation engine
takes the position over and places a limit order at the bankruptcy price; a long of 1 contract
at $100 with bankruptcy price $99 filled at $99.25 gives the insurance fund $0.25).

Why over 400 lines: it holds one venue's rules (liquidation and bankruptcy prices, ADL
ranking), each with its worked examples from the venue's pages; one module per venue is the
calculators' rule, mirrored by its test module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "effective_leverage",
    "pnl_percentage",
    "adl_ranking",
    "adl_percentiles",
    "AdlFill",
    "adl_fill",
    "bankruptcy_price_linear",
    "liquidation_price_linear",
    "bankruptcy_price_inverse",
    "LiquidationOrder",
    "liquidation_order",
    "insurance_fund_gain_linear",
    "insurance_fund_gain_inverse",
]


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _pos(name: str, value: float) -> float:
    if _finite(name, value) <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def effective_leverage(mark_value: float, bankrupt_value: float) -> float:
    """``abs(MarkValue) / (MarkValue - BankruptValue)``.

    Parameters
    ----------
    mark_value : float
        Position value at the mark price (signed as BitMEX reports it).
    bankrupt_value : float
        Position value at the bankruptcy price.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If an argument is not finite or the two values are equal.

    Notes
    -----
    Source: bitmex.com ``/app/autoDeleveraging``.
    """
    denominator = _finite("mark_value", mark_value) - _finite("bankrupt_value", bankrupt_value)
    if denominator == 0:
        raise ValueError("mark_value equals bankrupt_value: effective leverage is undefined")
    return abs(mark_value) / denominator


def pnl_percentage(mark_value: float, entry_value: float) -> float:
    """``(MarkValue - AvgEntryValue) / abs(AvgEntryValue)``.

    Parameters
    ----------
    mark_value : float
        Position value at the mark price.
    entry_value : float
        Position value at the average entry price, ``!= 0``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If an argument is not finite or ``entry_value == 0``.

    Notes
    -----
    Source: bitmex.com ``/app/autoDeleveraging``.
    """
    if _finite("entry_value", entry_value) == 0:
        raise ValueError("entry_value must be non-zero")
    return (_finite("mark_value", mark_value) - entry_value) / abs(entry_value)


def adl_ranking(mark_value: float, entry_value: float, bankrupt_value: float) -> float:
    """ADL priority: ``PnL% * EffLev`` if PnL% > 0, else ``PnL% / EffLev``.

    Parameters
    ----------
    mark_value, entry_value, bankrupt_value : float
        Position values at the mark, average entry and bankruptcy prices.

    Returns
    -------
    float
        Higher is deleveraged first (longs and shorts ranked separately).

    Raises
    ------
    ValueError
        As :func:`effective_leverage` and :func:`pnl_percentage`.

    Notes
    -----
    Source: bitmex.com ``/app/autoDeleveraging`` "Priority Ranking Calculation".
    """
    pnl = pnl_percentage(mark_value, entry_value)
    lev = effective_leverage(mark_value, bankrupt_value)
    return pnl * lev if pnl > 0 else pnl / lev


def adl_percentiles(quantities: list[float]) -> list[float]:
    """Queue indicator of positions already sorted by ranking (highest first).

    Each position's percentile is its cumulative share of the queue's quantity rounded up to
    the next 20% (the five indicator lights).

    Parameters
    ----------
    quantities : list of float
        Position sizes in ranking order, ``> 0``.

    Returns
    -------
    list of float
        Percentiles in (0, 1], multiples of 0.2.

    Raises
    ------
    ValueError
        If a quantity is not positive and finite.

    Notes
    -----
    Reproduces the table of bitmex.com ``/app/autoDeleveragingExamples`` (quantities
    10, 20, 30, 10, 10, 20 -> 20%, 40%, 60%, 80%, 80%, 100%); the page does not state the rule,
    this is the one consistent with it.
    """
    qs = [_pos("quantity", q) for q in quantities]
    total = sum(qs)
    out, cum = [], 0.0
    for q in qs:
        cum += q
        out.append(math.ceil(round(cum / total * 5, 12)) / 5)
    return out


@dataclass(frozen=True)
class AdlFill:
    """One counterparty closed by auto-deleveraging.

    Attributes
    ----------
    account : object
        Identifier passed in.
    quantity : float
        Contracts closed at the liquidated order's bankruptcy price.
    remaining : float
        Contracts the account keeps.
    """

    account: object
    quantity: float
    remaining: float


def adl_fill(queue: list[tuple[object, float, float]], size: float) -> list[AdlFill]:
    """Close a liquidated order of ``size`` against the opposite side, highest rank first.

    Parameters
    ----------
    queue : list of tuple
        ``(account, quantity, ranking)`` of opposite-side positions.
    size : float
        Contracts of the liquidated order left for ADL, ``> 0``.

    Returns
    -------
    list of AdlFill
        Accounts touched, in deleveraging order.

    Raises
    ------
    ValueError
        If a value is not finite, a quantity is not positive, or the queue cannot absorb
        ``size``.

    Notes
    -----
    Source: bitmex.com ``/app/autoDeleveragingExamples``: a liquidated short of 20 deleverages
    account 2 (all 10) and 10 of account 5's 20; fills are at the bankruptcy price.
    """
    left = _pos("size", size)
    ordered = sorted(queue, key=lambda item: -_finite("ranking", item[2]))
    fills = []
    for account, qty, _ in ordered:
        if left <= 0:
            break
        take = min(_pos("quantity", qty), left)
        fills.append(AdlFill(account, take, qty - take))
        left -= take
    if left > 1e-12 * size:
        raise ValueError(f"the opposite side holds less than {size} contracts")
    return fills


def bankruptcy_price_linear(entry_price: float, quantity: float, margin: float,
                            is_short: bool) -> float:
    """Bankruptcy price of a linear (quote-margined) position: margin fully lost.

    ``entry - side * margin / quantity``.

    Parameters
    ----------
    entry_price : float
        Average entry price, quote per base unit.
    quantity : float
        Position size in base units, ``> 0``.
    margin : float
        Margin backing the position, quote currency: the isolated margin, or the whole
        available wallet in cross margin.
    is_short : bool
        Position side.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If an argument is not finite or ``quantity <= 0``.

    Notes
    -----
    Source: bitmex.com ``/app/isolatedMarginExamples`` (20 ETHUSDT at 1,000 on a 10,000 USDT
    cross wallet: bankruptcy 500).
    """
    side = -1.0 if is_short else 1.0
    return _finite("entry_price", entry_price) - side * _finite("margin", margin) / _pos(
        "quantity", quantity)


def liquidation_price_linear(entry_price: float, quantity: float, margin: float,
                             maintenance_margin: float, is_short: bool) -> float:
    """Liquidation price of a linear position: margin left equals maintenance margin.

    Parameters
    ----------
    entry_price : float
        Quote per base unit.
    quantity : float
        Base units, ``> 0``.
    margin : float
        Margin backing the position, quote currency.
    maintenance_margin : float
        Maintenance margin in quote currency (assumed constant in price).
    is_short : bool
        Position side.

    Returns
    -------
    float
        ``bankruptcy + side * maintenance_margin / quantity``.

    Raises
    ------
    ValueError
        If an argument is not finite or ``quantity <= 0``.

    Notes
    -----
    Source: bitmex.com ``/app/isolatedMarginExamples`` (maintenance margin 1% = 200 USDT:
    liquidation 510).
    """
    side = -1.0 if is_short else 1.0
    return (bankruptcy_price_linear(entry_price, quantity, margin, is_short)
            + side * _finite("maintenance_margin", maintenance_margin) / quantity)


def bankruptcy_price_inverse(entry_price: float, contracts_usd: float, margin_xbt: float,
                             is_short: bool) -> float:
    """Bankruptcy price of an inverse (XBT-margined, USD contracts) isolated position.

    ``1 / (1 / entry + side * margin / contracts)``; with ``margin = contracts / (entry * L)``
    this is ``entry * L / (L + 1)`` for a long and ``entry * L / (L - 1)`` for a short.

    Parameters
    ----------
    entry_price : float
        USD per XBT, ``> 0``.
    contracts_usd : float
        Position size in USD contracts (``> 0``).
    margin_xbt : float
        Isolated margin, XBT, ``>= 0``.
    is_short : bool
        Position side.

    Returns
    -------
    float
        USD per XBT (``inf`` for a short whose margin covers any rise).

    Raises
    ------
    ValueError
        If an argument is not finite or not positive where required.

    Notes
    -----
    Derived from the inverse PnL ``contracts * (1/entry - 1/price)`` in XBT and the definition
    of the bankruptcy price (margin fully lost; bitmex.com ``/app/liquidation``).
    """
    side = -1.0 if is_short else 1.0
    inv = 1.0 / _pos("entry_price", entry_price) + side * _finite("margin_xbt", margin_xbt) / _pos(
        "contracts_usd", contracts_usd)
    if margin_xbt < 0:
        raise ValueError("margin_xbt must be >= 0")
    return math.inf if inv <= 0 else 1.0 / inv


def insurance_fund_gain_linear(quantity: float, bankruptcy_price: float, fill_price: float,
                               is_short: bool) -> float:
    """Insurance fund's gain (> 0) or draw (< 0) when a linear liquidation fills at ``fill_price``.

    The liquidated trader loses exactly its margin: the position is closed at the bankruptcy
    price for the trader, and the difference to the real fill goes to (or comes from) the
    insurance fund.

    Parameters
    ----------
    quantity : float
        Base units of the position, ``> 0``.
    bankruptcy_price, fill_price : float
        Quote per base unit, ``> 0``.
    is_short : bool
        Side of the liquidated position.

    Returns
    -------
    float
        Quote currency: ``(fill - bankruptcy) x qty`` for a long (its position is sold),
        ``(bankruptcy - fill) x qty`` for a short (bought back).

    Raises
    ------
    ValueError
        If an argument is not finite or not positive.

    Notes
    -----
    Source: bitmex.com ``/app/liquidationExamples`` (limit order at the bankruptcy price;
    the better fill goes to the insurance fund) and ``/app/liquidation``.
    """
    qty = _pos("quantity", quantity)
    diff = _pos("fill_price", fill_price) - _pos("bankruptcy_price", bankruptcy_price)
    return (-diff if is_short else diff) * qty


def insurance_fund_gain_inverse(contracts_usd: float, bankruptcy_price: float,
                                fill_price: float, is_short: bool) -> float:
    """Insurance fund's gain (> 0) or draw (< 0) of an inverse (XBT-margined) liquidation, XBT.

    Parameters
    ----------
    contracts_usd : float
        Position size in USD contracts, ``> 0``.
    bankruptcy_price, fill_price : float
        USD per XBT, ``> 0``.
    is_short : bool
        Side of the liquidated position.

    Returns
    -------
    float
        XBT: ``contracts x (1/bankruptcy - 1/fill)`` for a long, ``contracts x (1/fill -
        1/bankruptcy)`` for a short (the inverse PnL of closing at the fill instead of the
        bankruptcy price).

    Raises
    ------
    ValueError
        If an argument is not finite or not positive.

    Notes
    -----
    Derived from the inverse PnL ``contracts x (1/entry - 1/exit)`` (bitmex.com
    ``/app/liquidation``, ``/app/isolatedMarginExamples``).
    """
    c = _pos("contracts_usd", contracts_usd)
    gain = c * (1.0 / _pos("bankruptcy_price", bankruptcy_price) - 1.0 / _pos("fill_price",
                                                                               fill_price))
    return -gain if is_short else gain


@dataclass(frozen=True)
class LiquidationOrder:
    """The liquidation engine's order for a position it has taken over.

    Attributes
    ----------
    side : {"sell", "buy"}
        ``sell`` closes a long, ``buy`` closes a short.
    limit_price : float
        The bankruptcy price.
    filled : bool
        True when the book can fill it at the limit or better now.
    fill_price : float
        The best opposite price: the fill when ``filled``; otherwise the price at which the
        position would close if the insurance fund aggressed the book.
    insurance_fund_gain : float
        Gain (> 0) when filled better than the bankruptcy price; when not filled, the draw
        (< 0) the fund takes if it closes at ``fill_price``, or ADL covers.
    """

    side: str
    limit_price: float
    filled: bool
    fill_price: float
    insurance_fund_gain: float


def liquidation_order(quantity: float, bankruptcy_price: float, best_opposite_price: float,
                      is_short: bool) -> LiquidationOrder:
    """Place a linear position's liquidation order at its bankruptcy price against the book.

    Parameters
    ----------
    quantity : float
        Base units of the position, ``> 0``.
    bankruptcy_price : float
        Limit price (:func:`bankruptcy_price_linear`), ``> 0``.
    best_opposite_price : float
        Best bid (for a long's sell) or best ask (for a short's buy), ``> 0``; the whole
        quantity is assumed available there.
    is_short : bool
        Side of the liquidated position.

    Returns
    -------
    LiquidationOrder

    Raises
    ------
    ValueError
        If an argument is not finite or not positive.

    Notes
    -----
    Source: bitmex.com ``/app/liquidation`` ("the liquidation engine takes over the position
    ... and then attempts to liquidate the position with a Limit order at the bankruptcy
    price") and ``/app/liquidationExamples`` (filled at $99.25 against a $99 limit: $0.25 to
    the insurance fund). A sell limit fills when the best bid is at or above it, a buy limit
    when the best ask is at or below it; an unfilled order stays on the book and the insurance
    fund (then ADL) stands behind it.
    """
    b = _pos("bankruptcy_price", bankruptcy_price)
    p = _pos("best_opposite_price", best_opposite_price)
    filled = p <= b if is_short else p >= b
    return LiquidationOrder(
        side="buy" if is_short else "sell",
        limit_price=b,
        filled=filled,
        fill_price=p,
        insurance_fund_gain=insurance_fund_gain_linear(quantity, b, p, is_short),
    )
