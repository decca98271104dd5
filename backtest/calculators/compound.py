"""Compound v3 (Comet) liquidation arithmetic in exact integers.

Units follow ``Comet.sol``:

- balances are integers in token units; the base balance is the *present value* (principal
  times the supply or borrow index, ``presentValue``), negative for a borrower;
- prices are Chainlink-style integers with 8 decimals (``PRICE_SCALE = 1e8``), USD per whole
  token; ``scale`` is ``10**decimals`` of the token;
- factors (``liquidateCollateralFactor``, ``liquidationFactor``, ``storeFrontPriceFactor``) are
  18-decimal integers (``FACTOR_SCALE = 1e18``).

Sources: compound-finance/comet ``contracts/Comet.sol`` ``isLiquidatable`` (L566-601),
``absorbInternal`` (L1158-1237), ``quoteCollateral`` (L1247-1286), ``CometMath``/``CometCore``
helpers ``mulPrice``, ``divPrice``, ``mulFactor``. Repository at the commit read:
https://github.com/compound-finance/comet/tree/d5a30b0aaeff7755f1431e87f818990902237b03.

Why over 400 lines: it mirrors one contract (``Comet.sol`` with its math helpers); one module
per protocol is the calculators' rule, mirrored by its test module.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FACTOR_SCALE",
    "PRICE_SCALE",
    "mul_price",
    "div_price",
    "mul_factor",
    "Collateral",
    "is_liquidatable",
    "AbsorbResult",
    "absorb",
    "storefront_discount",
    "quote_collateral",
    "can_buy_collateral",
]

FACTOR_SCALE = 10**18
PRICE_SCALE = 10**8


def _int(name: str, value: int, nonneg: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if nonneg and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _tdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def mul_price(n: int, price: int, from_scale: int) -> int:
    """Token amount to USD value: ``n * price / fromScale`` (Comet ``mulPrice``, floor).

    Parameters
    ----------
    n : int
        Token units, ``>= 0``.
    price : int
        USD per whole token, 8 decimals.
    from_scale : int
        ``10**decimals`` of the token.

    Returns
    -------
    int
        USD value, 8 decimals.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``from_scale == 0``.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` ``mulPrice``.
    """
    if _int("from_scale", from_scale) == 0:
        raise ValueError("from_scale must be > 0")
    return _int("n", n) * _int("price", price) // from_scale


def div_price(n: int, price: int, to_scale: int) -> int:
    """USD value to token amount: ``n * toScale / price`` (Comet ``divPrice``, floor).

    Parameters
    ----------
    n : int
        USD value, 8 decimals, ``>= 0``.
    price : int
        USD per whole token, 8 decimals, ``> 0``.
    to_scale : int
        ``10**decimals`` of the token.

    Returns
    -------
    int
        Token units.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``price == 0``.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` ``divPrice``.
    """
    if _int("price", price) == 0:
        raise ValueError("price must be > 0")
    return _int("n", n) * _int("to_scale", to_scale) // price


def mul_factor(n: int, factor: int) -> int:
    """``n * factor / 1e18`` (Comet ``mulFactor``, floor).

    Parameters
    ----------
    n : int
        Non-negative integer.
    factor : int
        18-decimal factor.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` ``mulFactor``.
    """
    return _int("n", n) * _int("factor", factor) // FACTOR_SCALE


@dataclass(frozen=True)
class Collateral:
    """One collateral asset of an account.

    Attributes
    ----------
    balance : int
        Collateral held, token units.
    price : int
        USD per whole token, 8 decimals.
    scale : int
        ``10**decimals`` of the token.
    liquidate_collateral_factor : int
        ``liquidateCollateralFactor``, 18 decimals (used by :func:`is_liquidatable`).
    liquidation_factor : int
        ``liquidationFactor``, 18 decimals (used by :func:`absorb` and
        :func:`quote_collateral`).
    """

    balance: int
    price: int
    scale: int
    liquidate_collateral_factor: int = FACTOR_SCALE
    liquidation_factor: int = FACTOR_SCALE


def is_liquidatable(
    base_balance: int, base_price: int, base_scale: int, collaterals: list[Collateral]
) -> bool:
    """Comet ``isLiquidatable``: a borrower whose liquidation-weighted collateral is short.

    ``liquidity = -debt * basePrice + sum(collateral_i * price_i * liquidateCF_i)``; the account
    is liquidatable iff ``liquidity < 0``. Accounts with ``base_balance >= 0`` never are.

    Parameters
    ----------
    base_balance : int
        Present value of the base balance, token units, negative for a borrower.
    base_price : int
        Base token price, 8 decimals.
    base_scale : int
        ``10**decimals`` of the base token.
    collaterals : list of Collateral
        The account's collateral assets (``liquidate_collateral_factor`` is used).

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If a value is not an int or a collateral field is negative.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` L566-601. The loop returns early as
    soon as the running liquidity is >= 0; an asset with ``liquidateCollateralFactor == 0``
    contributes nothing.
    """
    _int("base_balance", base_balance, nonneg=False)
    if _int("base_scale", base_scale) == 0:
        raise ValueError("base_scale must be > 0")
    if base_balance >= 0:
        return False
    liquidity = _tdiv(base_balance * _int("base_price", base_price), base_scale)
    for c in collaterals:
        if liquidity >= 0:
            return False
        if c.liquidate_collateral_factor == 0:
            continue
        value = mul_price(c.balance, c.price, c.scale)
        liquidity += mul_factor(value, c.liquidate_collateral_factor)
    return liquidity < 0


@dataclass(frozen=True)
class AbsorbResult:
    """Outcome of absorbing one account.

    Attributes
    ----------
    delta_value : int
        Liquidation-factor-weighted value of the seized collateral, USD 8 decimals.
    delta_balance : int
        ``delta_value`` in base token units.
    old_balance : int
        Base balance before, token units (negative).
    new_balance : int
        Base balance after: ``max(0, old_balance + delta_balance)``, token units; a positive
        value is supplied back to the borrower.
    base_paid_out : int
        ``new_balance - old_balance``: debt wiped plus any supply credited; the protocol's base
        reserves fall by this amount (``AbsorbDebt.basePaidOut``).
    shortfall : int
        Debt not covered by the weighted collateral, base units, absorbed by reserves
        (``-(old_balance + delta_balance)`` when that is positive, else 0).
    seized : tuple of int
        Collateral moved to the protocol, per input asset, token units (0 for assets with
        ``liquidation_factor == 0``, which are skipped).
    """

    delta_value: int
    delta_balance: int
    old_balance: int
    new_balance: int
    base_paid_out: int
    shortfall: int
    seized: tuple[int, ...]


def absorb(
    base_balance: int, base_price: int, base_scale: int, collaterals: list[Collateral]
) -> AbsorbResult:
    """Comet ``absorbInternal`` for one liquidatable account: the protocol takes everything.

    Parameters
    ----------
    base_balance : int
        Present value of the base balance, token units, must be negative.
    base_price : int
        Base token price, 8 decimals, ``> 0``.
    base_scale : int
        ``10**decimals`` of the base token.
    collaterals : list of Collateral
        The account's collateral assets (``liquidation_factor`` is used).

    Returns
    -------
    AbsorbResult

    Raises
    ------
    ValueError
        If ``base_balance >= 0`` (``NotLiquidatable``), or a value is invalid. Whether the
        account is liquidatable is the caller's check (:func:`is_liquidatable`).

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` L1158-1237:
    ``deltaValue = sum(mulFactor(mulPrice(seize_i, price_i, scale_i), liquidationFactor_i))``,
    ``deltaBalance = divPrice(deltaValue, basePrice, baseScale)``,
    ``newBalance = max(0, oldBalance + deltaBalance)``. The absorber earns no bonus, only
    liquidator points. The ``AbsorbCollateral`` event's ``usdValue`` is the unweighted value.
    """
    if _int("base_balance", base_balance, nonneg=False) >= 0:
        raise ValueError("only a borrower (base_balance < 0) can be absorbed (NotLiquidatable)")
    delta_value = 0
    seized = []
    for c in collaterals:
        if c.liquidation_factor == 0:
            seized.append(0)
            continue
        value = mul_price(c.balance, c.price, c.scale)
        delta_value += mul_factor(value, c.liquidation_factor)
        seized.append(c.balance)
    delta_balance = div_price(delta_value, base_price, base_scale)
    raw = base_balance + delta_balance
    new_balance = max(0, raw)
    return AbsorbResult(
        delta_value=delta_value,
        delta_balance=delta_balance,
        old_balance=base_balance,
        new_balance=new_balance,
        base_paid_out=new_balance - base_balance,
        shortfall=max(0, -raw),
        seized=tuple(seized),
    )


def storefront_discount(store_front_price_factor: int, liquidation_factor: int) -> int:
    """Storefront discount: ``storeFrontPriceFactor * (1 - liquidationFactor)``, 18 decimals.

    Parameters
    ----------
    store_front_price_factor : int
        18 decimals (mainnet cUSDCv3: ``0.5e18``).
    liquidation_factor : int
        The collateral's ``liquidationFactor``, 18 decimals, ``<= 1e18``.

    Returns
    -------
    int
        Discount on the oracle price, 18 decimals (WETH on cUSDCv3: 2.5%).

    Raises
    ------
    ValueError
        If an argument is negative, not an int, or ``liquidation_factor > 1e18``.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` ``quoteCollateral``.
    """
    if _int("liquidation_factor", liquidation_factor) > FACTOR_SCALE:
        raise ValueError("liquidation_factor must be <= 1e18")
    return mul_factor(store_front_price_factor, FACTOR_SCALE - liquidation_factor)


def quote_collateral(
    base_amount: int,
    asset_price: int,
    asset_scale: int,
    liquidation_factor: int,
    store_front_price_factor: int,
    base_price: int,
    base_scale: int,
) -> int:
    """Collateral bought for ``base_amount`` on the storefront (Comet ``quoteCollateral``).

    Parameters
    ----------
    base_amount : int
        Base tokens paid, token units.
    asset_price : int
        Collateral price, 8 decimals.
    asset_scale : int
        ``10**decimals`` of the collateral.
    liquidation_factor : int
        The collateral's ``liquidationFactor``, 18 decimals.
    store_front_price_factor : int
        18 decimals.
    base_price : int
        Base token price, 8 decimals.
    base_scale : int
        ``10**decimals`` of the base token.

    Returns
    -------
    int
        Collateral out, token units:
        ``basePrice * baseAmount * assetScale / assetPriceDiscounted / baseScale``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or the discounted price is 0.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` L1247-1286. Purchases are only
    allowed while ``reserves < targetReserves`` (:func:`can_buy_collateral`).
    """
    discount = storefront_discount(store_front_price_factor, liquidation_factor)
    discounted = mul_factor(asset_price, FACTOR_SCALE - discount)
    if discounted == 0 or _int("base_scale", base_scale) == 0:
        raise ValueError("discounted asset price and base_scale must be > 0")
    return (
        _int("base_price", base_price) * _int("base_amount", base_amount)
        * _int("asset_scale", asset_scale) // discounted // base_scale
    )


def can_buy_collateral(reserves: int, target_reserves: int) -> bool:
    """Whether the storefront is open: ``reserves < targetReserves``.

    Parameters
    ----------
    reserves : int
        Base reserves, token units (may be negative).
    target_reserves : int
        ``targetReserves``, token units.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If an argument is not an int.

    Notes
    -----
    Source: compound-finance/comet ``contracts/Comet.sol`` ``buyCollateral``
    (``if (reserves >= 0 && uint(reserves) >= targetReserves) revert NotForSale()``).
    """
    _int("reserves", reserves, nonneg=False)
    _int("target_reserves", target_reserves)
    return not (reserves >= 0 and reserves >= target_reserves)
