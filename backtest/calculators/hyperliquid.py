"""Hyperliquid liquidation rules (floats, USDC and coin units).

Sources (documentation pages under https://hyperliquid.gitbook.io/hyperliquid-docs/):
``trading/liquidations`` (maintenance margin, liquidation price formula, partial liquidation
above 100k USDC with a 30 s cooldown, backstop below 2/3 of maintenance margin) and
``trading/auto-deleveraging``; freqtrade ``freqtrade/exchange/hyperliquid.py``
``dry_run_liquidation_price``, which reproduces the exchange's ``liquidationPrice``.
"""

from __future__ import annotations

import math

__all__ = [
    "PARTIAL_LIQUIDATION_THRESHOLD_USDC",
    "PARTIAL_LIQUIDATION_THRESHOLD_TESTNET_USDC",
    "PARTIAL_LIQUIDATION_FRACTION",
    "PARTIAL_LIQUIDATION_COOLDOWN_S",
    "BACKSTOP_FRACTION_OF_MM",
    "maintenance_margin_rate",
    "maintenance_margin",
    "liquidation_price",
    "isolated_liquidation_price",
    "is_liquidatable",
    "market_liquidation_fraction",
    "backstop_eligible",
]

PARTIAL_LIQUIDATION_THRESHOLD_USDC = 100_000.0
PARTIAL_LIQUIDATION_THRESHOLD_TESTNET_USDC = 10_000.0
PARTIAL_LIQUIDATION_FRACTION = 0.2
PARTIAL_LIQUIDATION_COOLDOWN_S = 30.0
BACKSTOP_FRACTION_OF_MM = 2.0 / 3.0


def _pos(name: str, value: float) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def maintenance_margin_rate(max_leverage: float) -> float:
    """Maintenance margin rate: half the initial margin at max leverage, ``1 / (2 * maxLev)``.

    Parameters
    ----------
    max_leverage : float
        Asset's maximum leverage (3 to 50).

    Returns
    -------
    float
        Fraction of notional (1% at 50x, 16.7% at 3x).

    Raises
    ------
    ValueError
        If ``max_leverage`` is not a positive finite number.

    Notes
    -----
    Source: hyperliquid-docs ``trading/liquidations``. Margin tiers raise it for large
    positions; pass the tier's max leverage.
    """
    return 1.0 / (2.0 * _pos("max_leverage", max_leverage))


def maintenance_margin(notional: float, max_leverage: float) -> float:
    """Maintenance margin of a position, USDC: ``|notional| / maxLev / 2``.

    Parameters
    ----------
    notional : float
        Position value, USDC.
    max_leverage : float
        Asset's maximum leverage.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If an argument is not finite or ``max_leverage <= 0``.

    Notes
    -----
    Source: hyperliquid-docs ``trading/liquidations``; freqtrade ``hyperliquid.py``.
    """
    return abs(_finite("notional", notional)) * maintenance_margin_rate(max_leverage)


def liquidation_price(
    entry_price: float, size: float, margin_available: float, max_leverage: float,
    is_short: bool,
) -> float:
    """Liquidation price: ``price - side * margin_available / size / (1 - l * side)``.

    Parameters
    ----------
    entry_price : float
        Position price, USDC per coin.
    size : float
        Position size, coins, ``> 0``.
    margin_available : float
        Isolated margin minus maintenance margin (isolated), or account value minus the
        maintenance margin (cross), USDC.
    max_leverage : float
        Asset's maximum leverage (``l = 1 / (2 * maxLev)``).
    is_short : bool
        Position side.

    Returns
    -------
    float
        USDC per coin (may be negative for an over-collateralised long).

    Raises
    ------
    ValueError
        If an argument is not finite or ``size``/``max_leverage`` is not positive.

    Notes
    -----
    Source: hyperliquid-docs ``trading/liquidations`` formula, as coded in freqtrade
    ``hyperliquid.py dry_run_liquidation_price``.
    """
    side = -1.0 if is_short else 1.0
    ll = maintenance_margin_rate(max_leverage)
    return (_pos("entry_price", entry_price)
            - side * _finite("margin_available", margin_available)
            / _pos("size", size) / (1.0 - ll * side))


def isolated_liquidation_price(
    entry_price: float, size: float, isolated_margin: float, max_leverage: float,
    is_short: bool,
) -> float:
    """Liquidation price of an isolated position from its margin.

    Parameters
    ----------
    entry_price : float
        USDC per coin.
    size : float
        Coins, ``> 0``.
    isolated_margin : float
        Margin assigned to the position, USDC.
    max_leverage : float
        Asset's maximum leverage.
    is_short : bool
        Position side.

    Returns
    -------
    float
        USDC per coin.

    Raises
    ------
    ValueError
        As :func:`liquidation_price`.

    Notes
    -----
    ``margin_available = isolated_margin - size * entry_price / maxLev / 2``. For cross
    margin call :func:`liquidation_price` with ``account_value - maintenance_margin``.
    Source: freqtrade ``hyperliquid.py`` (checked against exchange values in its tests).
    """
    mm = maintenance_margin(_pos("size", size) * _pos("entry_price", entry_price), max_leverage)
    return liquidation_price(entry_price, size, isolated_margin - mm, max_leverage, is_short)


def is_liquidatable(equity: float, maintenance_margin_usdc: float) -> bool:
    """Whether a position (isolated) or account (cross) is liquidatable: equity < MM.

    Parameters
    ----------
    equity : float
        Account value (cross) or isolated margin plus unrealised PnL, USDC, at the mark price.
    maintenance_margin_usdc : float
        Maintenance margin, USDC.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If an argument is not finite or the margin is negative.

    Notes
    -----
    Source: hyperliquid-docs ``trading/liquidations``.
    """
    if _finite("maintenance_margin_usdc", maintenance_margin_usdc) < 0:
        raise ValueError("maintenance_margin_usdc must be >= 0")
    return _finite("equity", equity) < maintenance_margin_usdc


def market_liquidation_fraction(
    position_notional: float, in_cooldown: bool = False,
    threshold: float = PARTIAL_LIQUIDATION_THRESHOLD_USDC,
) -> float:
    """Share of the position sent as market liquidation orders.

    Above ``threshold`` (100k USDC; 10k on testnet) only 20% is sent; during the 30 s cooldown
    after a partial liquidation, orders are for the entire position (official wording).

    Parameters
    ----------
    position_notional : float
        Liquidatable position value, USDC.
    in_cooldown : bool, default False
        Whether a partial liquidation happened within the last 30 s.
    threshold : float, default 100_000
        Partial-liquidation threshold, USDC.

    Returns
    -------
    float
        ``0.2`` or ``1.0``.

    Raises
    ------
    ValueError
        If an argument is not finite or negative.

    Notes
    -----
    Source: hyperliquid-docs ``trading/liquidations``
    (https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations; some secondary
    wikis say "after the cooldown"; the official text is followed).
    """
    if _finite("position_notional", position_notional) < 0 or _finite("threshold", threshold) < 0:
        raise ValueError("position_notional and threshold must be >= 0")
    if abs(position_notional) > threshold and not in_cooldown:
        return PARTIAL_LIQUIDATION_FRACTION
    return 1.0


def backstop_eligible(equity: float, maintenance_margin_usdc: float) -> bool:
    """Whether the liquidator vault may take over: equity < 2/3 of maintenance margin.

    Parameters
    ----------
    equity : float
        Account value (cross) or isolated margin plus PnL, USDC.
    maintenance_margin_usdc : float
        Maintenance margin, USDC.

    Returns
    -------
    bool
        True when the backstop applies (if the book has not liquidated the position); the
        maintenance margin is then not returned to the user.

    Raises
    ------
    ValueError
        If an argument is not finite or the margin is negative.

    Notes
    -----
    Source: hyperliquid-docs ``trading/liquidations`` ("Backstop liquidation").
    """
    if _finite("maintenance_margin_usdc", maintenance_margin_usdc) < 0:
        raise ValueError("maintenance_margin_usdc must be >= 0")
    return _finite("equity", equity) < BACKSTOP_FRACTION_OF_MM * maintenance_margin_usdc
