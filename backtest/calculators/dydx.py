"""dYdX v4 liquidation arithmetic (``x/clob/keeper/liquidations.go``) in exact integers.

Amounts are integers in *quote quantums* (USDC with 6 decimals: ``1_000_000`` = $1) and *base
quantums* (``10**-atomic_resolution`` units of the asset, e.g. BTC ``1e8`` per coin in the test
perpetual). Prices returned as ``fractions.Fraction`` are quote quantums per base quantum, as
the chain's ``big.Rat``. Parts per million (``ppm``, ``1_000_000`` = 100%) as in the config.

Sources: dydxprotocol/v4-chain ``protocol/x/clob/keeper/liquidations.go`` (bankruptcy price
L396-496, fillable price L500-636, insurance fund delta L641-718), ``protocol/lib/margin/risk.go``
L52-54, ``protocol/x/clob/types/liquidations_config_keeper.go``,
``protocol/testing/mainnet/genesis.json`` L950-963. Repository at the commit read:
https://github.com/dydxprotocol/v4-chain/tree/84d4664bae71e3a077adaac67fb77ad19cd28d30.
"""

from __future__ import annotations

from fractions import Fraction

__all__ = [
    "ONE_MILLION",
    "QUOTE_QUANTUMS_PER_USDC",
    "DEFAULT_MAX_LIQUIDATION_FEE_PPM",
    "DEFAULT_BANKRUPTCY_ADJUSTMENT_PPM",
    "DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO_PPM",
    "MAINNET_MAX_LIQUIDATION_FEE_PPM",
    "MAINNET_SPREAD_TO_MAINTENANCE_MARGIN_RATIO_PPM",
    "is_liquidatable",
    "bankruptcy_price_quote_quantums",
    "fillable_price",
    "liquidation_insurance_fund_delta",
]

ONE_MILLION = 1_000_000
QUOTE_QUANTUMS_PER_USDC = 1_000_000

# LiquidationsConfig_Default (x/clob/types) and mainnet genesis values
DEFAULT_MAX_LIQUIDATION_FEE_PPM = 5_000
DEFAULT_BANKRUPTCY_ADJUSTMENT_PPM = ONE_MILLION
DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO_PPM = 100_000
MAINNET_MAX_LIQUIDATION_FEE_PPM = 15_000
MAINNET_SPREAD_TO_MAINTENANCE_MARGIN_RATIO_PPM = 1_500_000


def _int(name: str, value: int, nonneg: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int (quantums or ppm), got {type(value).__name__}")
    if nonneg and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def is_liquidatable(total_net_collateral: int, total_maintenance_margin: int) -> bool:
    """Subaccount liquidation test: ``TMMR > 0`` and ``TNC < TMMR``.

    Parameters
    ----------
    total_net_collateral : int
        TNC: USDC balance plus the positions' net notional, quote quantums (signed).
    total_maintenance_margin : int
        TMMR, quote quantums.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If an argument is not an int or TMMR is negative.

    Notes
    -----
    Source: dydxprotocol/v4-chain ``protocol/lib/margin/risk.go`` L52-54.
    """
    _int("total_net_collateral", total_net_collateral)
    _int("total_maintenance_margin", total_maintenance_margin, nonneg=True)
    return total_maintenance_margin > 0 and total_net_collateral < total_maintenance_margin


def bankruptcy_price_quote_quantums(
    pnnv: int, pnnvad: int, pmmr: int, pmmrad: int, tnc: int, tmmr: int
) -> int:
    """Quote quantums at which closing a position delta leaves the subaccount at zero equity.

    ``-DNNV - TNC * |DMMR| / TMMR`` with ``DNNV = PNNVAD - PNNV`` and ``DMMR = PMMRAD - PMMR``,
    rounded toward positive infinity (the one division floors and is subtracted).

    Parameters
    ----------
    pnnv, pnnvad : int
        Position net notional before and after the delta, quote quantums (signed).
    pmmr, pmmrad : int
        Position maintenance margin before and after the delta, quote quantums.
    tnc : int
        Subaccount total net collateral, quote quantums (signed).
    tmmr : int
        Subaccount total maintenance margin, quote quantums, ``> 0``.

    Returns
    -------
    int
        Signed quote quantums: positive when selling (closing a long) must raise at least this
        much, negative when buying (closing a short) may cost at most its absolute value.

    Raises
    ------
    ValueError
        If an argument is not an int, ``tmmr <= 0``, or ``DMMR > 0`` (the chain panics: the
        delta must reduce the position).

    Notes
    -----
    Source: dydxprotocol/v4-chain ``liquidations.go`` ``calculateBankruptcyPrice`` (L396-496);
    Go ``big.Int.Div`` is Euclidean, i.e. floors for a positive divisor.
    """
    for name, value in (("pnnv", pnnv), ("pnnvad", pnnvad), ("tnc", tnc)):
        _int(name, value)
    _int("pmmr", pmmr, nonneg=True)
    _int("pmmrad", pmmrad, nonneg=True)
    if _int("tmmr", tmmr) <= 0:
        raise ValueError("tmmr must be > 0")
    dnnv = pnnvad - pnnv
    dmmr = pmmrad - pmmr
    if dmmr > 0:
        raise ValueError("DMMR is positive: the delta must reduce the position")
    return -dnnv - (tnc * abs(dmmr)) // tmmr


def fillable_price(
    pnnv: int,
    pmmr: int,
    position_size: int,
    tnc: int,
    tmmr: int,
    bankruptcy_adjustment_ppm: int = DEFAULT_BANKRUPTCY_ADJUSTMENT_PPM,
    spread_to_maintenance_margin_ratio_ppm: int = DEFAULT_SPREAD_TO_MAINTENANCE_MARGIN_RATIO_PPM,
) -> Fraction:
    """Worst price a liquidation order may fill at.

    ``ABR = clamp(BA * (1 - TNC / TMMR), 0, 1)``; ``fillable = (PNNV - ABR * SMMR * PMMR) / PS``.

    Parameters
    ----------
    pnnv : int
        Position net notional, quote quantums (signed: negative for a short).
    pmmr : int
        Position maintenance margin, quote quantums.
    position_size : int
        Position size, base quantums (signed), ``!= 0``.
    tnc, tmmr : int
        Subaccount total net collateral and maintenance margin, quote quantums, ``tmmr > 0``.
    bankruptcy_adjustment_ppm : int, default 1_000_000
        ``BankruptcyAdjustmentPpm`` (BA).
    spread_to_maintenance_margin_ratio_ppm : int, default 100_000
        ``SpreadToMaintenanceMarginRatioPpm`` (SMMR); mainnet genesis 1_500_000.

    Returns
    -------
    fractions.Fraction
        Quote quantums per base quantum, exact.

    Raises
    ------
    ValueError
        If an argument is not an int, ``position_size == 0``, ``tmmr <= 0`` or a ppm value is
        negative.

    Notes
    -----
    Source: dydxprotocol/v4-chain ``liquidations.go`` ``GetFillablePrice`` (L500-636).
    """
    for name, value in (("pnnv", pnnv), ("tnc", tnc)):
        _int(name, value)
    _int("pmmr", pmmr, nonneg=True)
    _int("bankruptcy_adjustment_ppm", bankruptcy_adjustment_ppm, nonneg=True)
    _int("spread_to_maintenance_margin_ratio_ppm", spread_to_maintenance_margin_ratio_ppm,
         nonneg=True)
    if _int("position_size", position_size) == 0:
        raise ValueError("position_size must be non-zero")
    if _int("tmmr", tmmr) <= 0:
        raise ValueError("tmmr must be > 0")
    abr = (1 - Fraction(tnc, tmmr)) * Fraction(bankruptcy_adjustment_ppm, ONE_MILLION)
    abr = min(Fraction(1), max(Fraction(0), abr))
    spread = pmmr * Fraction(spread_to_maintenance_margin_ratio_ppm, ONE_MILLION)
    return (pnnv - abr * spread) / position_size


def liquidation_insurance_fund_delta(
    quote_quantums_received: int,
    bankruptcy_quote_quantums: int,
    max_liquidation_fee_ppm: int = DEFAULT_MAX_LIQUIDATION_FEE_PPM,
) -> int:
    """Insurance fund change for one liquidation fill.

    ``delta = quoteReceived - BP``; if ``delta <= 0`` the fund pays ``-delta`` (returned as the
    negative delta); otherwise the user pays ``min(|quoteReceived| * maxFee, delta)``.

    Parameters
    ----------
    quote_quantums_received : int
        Signed quote quantums the subaccount receives for the fill (positive when selling to
        close a long, negative when buying to close a short).
    bankruptcy_quote_quantums : int
        Bankruptcy price of the fill, quote quantums (:func:`bankruptcy_price_quote_quantums`).
    max_liquidation_fee_ppm : int, default 5_000
        Code default 0.5%; mainnet genesis 15_000 (1.5%).

    Returns
    -------
    int
        Quote quantums into (positive) or out of (negative) the insurance fund.

    Raises
    ------
    ValueError
        If an argument is not an int or the fee is negative.

    Notes
    -----
    Source: dydxprotocol/v4-chain ``liquidations.go`` ``GetLiquidationInsuranceFundDelta``
    (L641-718); ``lib.BigIntMulPpm`` floors.
    """
    _int("quote_quantums_received", quote_quantums_received)
    _int("bankruptcy_quote_quantums", bankruptcy_quote_quantums)
    _int("max_liquidation_fee_ppm", max_liquidation_fee_ppm, nonneg=True)
    delta = quote_quantums_received - bankruptcy_quote_quantums
    if delta <= 0:
        return delta
    max_fee = abs(quote_quantums_received) * max_liquidation_fee_ppm // ONE_MILLION
    return min(max_fee, delta)
