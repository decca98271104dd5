"""Drift v2 perp liquidation arithmetic (``math/liquidation.rs``) in exact integers.

Drift's fixed-point precisions (``math/constants.rs``):

- quote amounts (margin shortage, fees in USD): ``QUOTE_PRECISION = 1e6``;
- base amounts: ``BASE_PRECISION = 1e9``;
- prices: ``PRICE_PRECISION = 1e6``;
- margin ratios: ``MARGIN_PRECISION = 1e4`` (``1000`` = 10%);
- liquidation fees: ``LIQUIDATION_FEE_PRECISION = 1e6`` (``10_000`` = 1%);
- liquidation percentages: ``LIQUIDATION_PCT_PRECISION = 1e4``.

Sources: drift-labs/protocol-v2 ``programs/drift/src/math/liquidation.rs``
(``calculate_base_asset_amount_to_cover_margin_shortage`` L32-63, ``calculate_max_pct_to_liquidate``
L368-399, ``calculate_perp_if_fee`` L401-443, ``get_liquidation_fee`` L535-553),
``math/constants.rs`` (L185, L206). Repository at the commit read:
https://github.com/drift-labs/protocol-v2/tree/0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62.
"""

from __future__ import annotations

__all__ = [
    "QUOTE_PRECISION",
    "BASE_PRECISION",
    "PRICE_PRECISION",
    "MARGIN_PRECISION",
    "LIQUIDATION_FEE_PRECISION",
    "LIQUIDATION_PCT_PRECISION",
    "LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO",
    "PRICE_TIMES_AMM_TO_QUOTE_PRECISION_RATIO",
    "LIQUIDATION_FEE_ADJUST_GRACE_PERIOD_SLOTS",
    "LIQUIDATION_FEE_INCREASE_PER_SLOT",
    "DEFAULT_LIQUIDATION_MARGIN_BUFFER_RATIO",
    "U64_MAX",
    "U32_MAX",
    "base_asset_amount_to_cover_margin_shortage",
    "perp_if_fee",
    "max_pct_to_liquidate",
    "liquidation_fee",
    "margin_requirement_plus_buffer",
]

QUOTE_PRECISION = 10**6
BASE_PRECISION = 10**9
PRICE_PRECISION = 10**6
MARGIN_PRECISION = 10**4
LIQUIDATION_FEE_PRECISION = 10**6
LIQUIDATION_PCT_PRECISION = 10**4
LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO = LIQUIDATION_FEE_PRECISION // MARGIN_PRECISION
PRICE_TIMES_AMM_TO_QUOTE_PRECISION_RATIO = PRICE_PRECISION * (BASE_PRECISION // QUOTE_PRECISION)
LIQUIDATION_FEE_ADJUST_GRACE_PERIOD_SLOTS = 1_500
LIQUIDATION_FEE_INCREASE_PER_SLOT = 1  # 1e-6 of notional per slot
DEFAULT_LIQUIDATION_MARGIN_BUFFER_RATIO = 200  # 2% in MARGIN_PRECISION
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


def _nonneg(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int (fixed point), got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def base_asset_amount_to_cover_margin_shortage(
    margin_shortage: int,
    margin_ratio: int,
    liquidation_fee: int,
    if_liquidation_fee: int,
    oracle_price: int,
    quote_oracle_price: int = PRICE_PRECISION,
) -> int:
    """Compute the base amount the liquidator must take over to cover a margin shortage.

    ``base = shortage / (price * quotePrice * (MR - liqFee) - price * ifFee)``.

    Parameters
    ----------
    margin_shortage : int
        Margin requirement minus total collateral, ``QUOTE_PRECISION``.
    margin_ratio : int
        Market maintenance margin ratio, ``MARGIN_PRECISION`` (``500`` = 5%).
    liquidation_fee : int
        Liquidator fee, ``LIQUIDATION_FEE_PRECISION``.
    if_liquidation_fee : int
        Insurance-fund fee, ``LIQUIDATION_FEE_PRECISION``.
    oracle_price : int
        Oracle price, ``PRICE_PRECISION``.
    quote_oracle_price : int, default PRICE_PRECISION
        Quote asset (USDC) price, ``PRICE_PRECISION``.

    Returns
    -------
    int
        Base amount, ``BASE_PRECISION``; ``U64_MAX`` ("liquidate everything") when
        ``oracle_price == 0`` or ``MR <= liqFee``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or the denominator is not positive (the
        program's ``safe_sub``/``safe_div`` would fail).

    Notes
    -----
    Source: drift-labs/protocol-v2 ``math/liquidation.rs`` L32-63; integer floor divisions in
    the program's order.
    """
    for name, value in (("margin_shortage", margin_shortage), ("margin_ratio", margin_ratio),
                        ("liquidation_fee", liquidation_fee),
                        ("if_liquidation_fee", if_liquidation_fee),
                        ("oracle_price", oracle_price), ("quote_oracle_price", quote_oracle_price)):
        _nonneg(name, value)
    mr = margin_ratio * LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO
    if oracle_price == 0 or mr <= liquidation_fee:
        return U64_MAX
    price = oracle_price * quote_oracle_price // PRICE_PRECISION
    denominator = (price * (mr - liquidation_fee) // LIQUIDATION_FEE_PRECISION
                   - oracle_price * if_liquidation_fee // LIQUIDATION_FEE_PRECISION)
    if denominator <= 0:
        raise ValueError("fees leave no margin freed per unit of base (denominator <= 0)")
    return margin_shortage * PRICE_TIMES_AMM_TO_QUOTE_PRECISION_RATIO // denominator


def perp_if_fee(
    margin_shortage: int,
    base_asset_amount: int,
    margin_ratio: int,
    liquidator_fee: int,
    oracle_price: int,
    max_if_liquidation_fee: int,
    quote_oracle_price: int = PRICE_PRECISION,
) -> int:
    """Insurance-fund fee of a perp liquidation.

    ``min(maxIfFee, 0.95 * (MR - liqFee - shortage / (base * price)))``.

    Parameters
    ----------
    margin_shortage : int
        ``QUOTE_PRECISION``.
    base_asset_amount : int
        User's position size, ``BASE_PRECISION`` (absolute).
    margin_ratio : int
        Maintenance margin ratio, ``MARGIN_PRECISION``.
    liquidator_fee : int
        ``LIQUIDATION_FEE_PRECISION``.
    oracle_price : int
        ``PRICE_PRECISION``.
    max_if_liquidation_fee : int
        Market's cap, ``LIQUIDATION_FEE_PRECISION``.
    quote_oracle_price : int, default PRICE_PRECISION
        ``PRICE_PRECISION``.

    Returns
    -------
    int
        Fee rate, ``LIQUIDATION_FEE_PRECISION``; 0 when a price or the base amount is 0 or
        ``MR <= liquidator fee``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: drift-labs/protocol-v2 ``math/liquidation.rs`` ``calculate_perp_if_fee``
    (L401-443): the implied fee is multiplied by 19/20 "to avoid situation where fee leads to
    deposits == negative pnl leading to bankruptcy"; subtractions saturate at 0.
    """
    for name, value in (("margin_shortage", margin_shortage),
                        ("base_asset_amount", base_asset_amount), ("margin_ratio", margin_ratio),
                        ("liquidator_fee", liquidator_fee), ("oracle_price", oracle_price),
                        ("max_if_liquidation_fee", max_if_liquidation_fee),
                        ("quote_oracle_price", quote_oracle_price)):
        _nonneg(name, value)
    mr = margin_ratio * LIQUIDATION_FEE_TO_MARGIN_PRECISION_RATIO
    if oracle_price == 0 or quote_oracle_price == 0 or mr <= liquidator_fee \
            or base_asset_amount == 0:
        return 0
    price = oracle_price * quote_oracle_price // PRICE_PRECISION
    if price == 0:
        return 0
    shortage_per_notional = (margin_shortage * BASE_PRECISION // base_asset_amount
                             * PRICE_PRECISION // price)
    implied = max(0, max(0, mr - liquidator_fee) - min(shortage_per_notional, U32_MAX))
    return min(max_if_liquidation_fee, implied * 19 // 20)


def max_pct_to_liquidate(
    margin_shortage: int,
    slots_elapsed: int,
    initial_pct_to_liquidate: int,
    liquidation_duration: int,
    liquidation_margin_freed: int = 0,
) -> int:
    """Share of the margin shortage that may be freed now (gradual liquidation).

    Parameters
    ----------
    margin_shortage : int
        Current shortage, ``QUOTE_PRECISION``, ``> 0``.
    slots_elapsed : int
        Slots since the user's ``last_active_slot`` (when liquidation began).
    initial_pct_to_liquidate : int
        State parameter, ``LIQUIDATION_PCT_PRECISION``.
    liquidation_duration : int
        State parameter, slots; 0 means 100% at once.
    liquidation_margin_freed : int, default 0
        Margin already freed in this liquidation, ``QUOTE_PRECISION``.

    Returns
    -------
    int
        ``LIQUIDATION_PCT_PRECISION`` units (10_000 = 100%). Always 100% when the shortage is
        below $50.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``margin_shortage == 0``.

    Notes
    -----
    Source: drift-labs/protocol-v2 ``math/liquidation.rs`` ``calculate_max_pct_to_liquidate``
    (L368-399)::

        pct = min(1, initial_pct + slots * 1e4 / duration)
        freeable = (shortage + freed) * pct - freed
        return freeable * 1e4 / shortage
    """
    for name, value in (("slots_elapsed", slots_elapsed),
                        ("initial_pct_to_liquidate", initial_pct_to_liquidate),
                        ("liquidation_duration", liquidation_duration),
                        ("liquidation_margin_freed", liquidation_margin_freed)):
        _nonneg(name, value)
    if _nonneg("margin_shortage", margin_shortage) == 0:
        raise ValueError("margin_shortage must be > 0")
    if margin_shortage < 50 * QUOTE_PRECISION:
        return LIQUIDATION_PCT_PRECISION
    if liquidation_duration == 0:
        freeable_pct = LIQUIDATION_PCT_PRECISION
    else:
        freeable_pct = slots_elapsed * LIQUIDATION_PCT_PRECISION // liquidation_duration
    pct = min(freeable_pct + initial_pct_to_liquidate, LIQUIDATION_PCT_PRECISION)
    total = margin_shortage + liquidation_margin_freed
    max_freed = total * pct // LIQUIDATION_PCT_PRECISION
    freeable = max(0, max_freed - liquidation_margin_freed)
    return freeable * LIQUIDATION_PCT_PRECISION // margin_shortage


def liquidation_fee(base_liquidation_fee: int, max_liquidation_fee: int, slots_elapsed: int) -> int:
    """Liquidator fee after ``slots_elapsed`` slots of liquidation.

    Parameters
    ----------
    base_liquidation_fee : int
        Market's liquidator fee, ``LIQUIDATION_FEE_PRECISION``.
    max_liquidation_fee : int
        Cap, ``LIQUIDATION_FEE_PRECISION``.
    slots_elapsed : int
        Slots since the user's ``last_active_slot``.

    Returns
    -------
    int
        ``base`` during the first 1,500 slots (~10 min); then
        ``min(max, base + slots_elapsed * 1e-6)`` (the increase counts every elapsed slot,
        not only those after the grace period), ``LIQUIDATION_FEE_PRECISION``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: drift-labs/protocol-v2 ``math/liquidation.rs`` ``get_liquidation_fee`` (L535-553),
    ``LIQUIDATION_FEE_INCREASE_PER_SLOT`` (constants.rs L185); the same rule in drift-rs.
    """
    _nonneg("base_liquidation_fee", base_liquidation_fee)
    _nonneg("max_liquidation_fee", max_liquidation_fee)
    if _nonneg("slots_elapsed", slots_elapsed) < LIQUIDATION_FEE_ADJUST_GRACE_PERIOD_SLOTS:
        return base_liquidation_fee
    fee = min(base_liquidation_fee + slots_elapsed * LIQUIDATION_FEE_INCREASE_PER_SLOT, U32_MAX)
    return min(fee, max_liquidation_fee)


def margin_requirement_plus_buffer(
    margin_requirement: int, buffer_ratio: int = DEFAULT_LIQUIDATION_MARGIN_BUFFER_RATIO,
) -> int:
    """Margin a user being liquidated must reach to exit: ``MR * (1 + buffer)``.

    Parameters
    ----------
    margin_requirement : int
        Maintenance margin requirement, ``QUOTE_PRECISION``.
    buffer_ratio : int, default 200
        ``liquidation_margin_buffer_ratio``, ``MARGIN_PRECISION`` (200 = 2%).

    Returns
    -------
    int
        ``QUOTE_PRECISION``, rounded down.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: drift-labs/protocol-v2 ``math/constants.rs`` L206 (default 2%) and the margin
    context for liquidation (``MarginContext::liquidation``).
    """
    return (_nonneg("margin_requirement", margin_requirement)
            + margin_requirement * _nonneg("buffer_ratio", buffer_ratio) // MARGIN_PRECISION)
