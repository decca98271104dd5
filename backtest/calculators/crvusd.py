"""Curve crvUSD / LlamaLend LLAMMA: band edges, loan health, hard-liquidation share.

Band prices are floats (the AMM computes them with a WAD ``exp`` approximation; the float
formula agrees to about 1e-14 relative, the tolerance of the AMM's own tests). Health and
``f_remove`` are exact integers in WAD (``1e18``) as in ``controller.vy``. Prices are in the
borrowed token per collateral token; ``A`` is the band-width factor (bands are ~1/A wide).

Sources: curvefi/curve-stablecoin ``curve_stablecoin/AMM.vy`` (band grid L30-34,
``_p_oracle_up`` L350-358, ``p_current_up/down``, ``get_xy_up`` L1311-1440) and
``curve_stablecoin/controller.vy`` (``_health`` L1171-1208, ``_get_f_remove`` L1213,
``liquidate`` L1254+). The simplified band-conversion model is
:func:`band_conversion`'s (derived from ``AMM.vy`` ``get_xy_up``). Repository at the commit read:
https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a.

Why over 400 lines: it mirrors one protocol (``AMM.vy`` band prices and ``controller.vy``
health), whose functions build on each other; one module per protocol is the calculators' rule,
mirrored by its test module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "WAD",
    "MIN_TICKS",
    "MAX_TICKS",
    "p_oracle_up",
    "p_oracle_down",
    "p_current_up",
    "p_current_down",
    "band_index",
    "health",
    "f_remove",
    "loss_per_band",
    "band_sold_fraction",
    "BandConversion",
    "band_conversion",
    "SoftLiquidationState",
    "soft_liquidation_state",
]

WAD = 10**18
MIN_TICKS = 4
MAX_TICKS = 50


def _check_a(A: int) -> None:
    if isinstance(A, bool) or not isinstance(A, int) or A < 2:
        raise ValueError(f"A must be an int >= 2, got {A!r}")


def _check_price(name: str, value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite price, got {value!r}")
    return float(value)


def p_oracle_up(n: int, p_base: float, A: int) -> float:
    """Upper oracle-price edge of band ``n``: ``p_base * ((A - 1) / A) ** n``.

    Parameters
    ----------
    n : int
        Band index (larger ``n`` = lower prices; may be negative).
    p_base : float
        Base price of the grid (``AMM.get_base_price()``), borrowed token per collateral.
    A : int
        Band-width factor.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``p_base`` is not a positive finite number or ``A < 2``.

    Notes
    -----
    Source: curve-stablecoin ``AMM.vy`` ``_p_oracle_up`` (L350-358); checked like
    ``tests/amm/test_price_oracles.py::test_p_oracle_updown`` (rel 1e-14).
    """
    _check_a(A)
    return _check_price("p_base", p_base) * ((A - 1) / A) ** n


def p_oracle_down(n: int, p_base: float, A: int) -> float:
    """Lower oracle-price edge of band ``n``: ``p_oracle_up(n + 1)``.

    Parameters
    ----------
    n : int
        Band index.
    p_base : float
        Base price of the grid.
    A : int
        Band-width factor.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`p_oracle_up`.

    Notes
    -----
    Source: curve-stablecoin ``AMM.vy`` L30-34.
    """
    return p_oracle_up(n + 1, p_base, A)


def p_current_up(n: int, p_base: float, p_oracle: float, A: int) -> float:
    """AMM spot price at the top of band ``n`` for oracle price ``p_oracle``.

    ``p_oracle**3 / p_oracle_down(n)**2``: the AMM price moves as ``p_o**3 / p_up**2``, so when
    the oracle falls arbitrageurs buy collateral from the AMM (soft liquidation).

    Parameters
    ----------
    n : int
        Band index.
    p_base, p_oracle : float
        Grid base price and current oracle price.
    A : int
        Band-width factor.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If a price is not positive and finite or ``A < 2``.

    Notes
    -----
    Source: curve-stablecoin ``AMM.vy`` ``p_current_up``; checked like
    ``tests/amm/test_price_oracles.py::test_p_current_updown`` (rel 1e-10).
    """
    _check_price("p_oracle", p_oracle)
    return p_oracle**3 / p_oracle_down(n, p_base, A) ** 2


def p_current_down(n: int, p_base: float, p_oracle: float, A: int) -> float:
    """AMM spot price at the bottom of band ``n``: ``p_oracle**3 / p_oracle_up(n)**2``.

    Parameters
    ----------
    n : int
        Band index.
    p_base, p_oracle : float
        Grid base price and current oracle price.
    A : int
        Band-width factor.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If a price is not positive and finite or ``A < 2``.

    Notes
    -----
    Source: curve-stablecoin ``AMM.vy`` ``p_current_down``.
    """
    _check_price("p_oracle", p_oracle)
    return p_oracle**3 / p_oracle_up(n, p_base, A) ** 2


def band_index(p: float, p_base: float, A: int) -> int:
    """Band whose oracle range ``(p_down, p_up]`` contains ``p``.

    Parameters
    ----------
    p : float
        Oracle price.
    p_base : float
        Grid base price.
    A : int
        Band-width factor.

    Returns
    -------
    int
        ``n`` with ``p_oracle_down(n) < p <= p_oracle_up(n)``.

    Raises
    ------
    ValueError
        If a price is not positive and finite or ``A < 2``.

    Notes
    -----
    Source: the band grid of curve-stablecoin ``AMM.vy`` L30-34.
    """
    _check_a(A)
    _check_price("p", p)
    _check_price("p_base", p_base)
    n = math.floor(math.log(p_base / p) / math.log(A / (A - 1)))
    while p > p_oracle_up(n, p_base, A):
        n -= 1
    while p <= p_oracle_down(n, p_base, A):
        n += 1
    return n


def health(
    x_down: int,
    debt: int,
    liquidation_discount: int,
    full: bool = False,
    price_oracle: int = 0,
    p_up_n1: int = 0,
    collateral: int = 0,
    collateral_precision: int = 1,
    in_soft_liquidation: bool = True,
) -> int:
    """Loan health as ``controller.vy`` computes it, WAD (``< 0`` means hard-liquidatable).

    ``health = x_down * (1 - liquidation_discount) / debt - 1``; with ``full=True`` and the loan
    not yet in soft liquidation, ``(p_oracle - p_up(n1)) * collateral / debt`` is added.

    Parameters
    ----------
    x_down : int
        Borrowed tokens the position would hold after converting all the way down
        (``AMM.get_x_down``), 18 decimals.
    debt : int
        Loan debt, 18 decimals, ``> 0``.
    liquidation_discount : int
        The loan's ``liquidation_discount``, WAD (e.g. ``5e16`` = 5%).
    full : bool, default False
        Add the price-distance term.
    price_oracle : int, default 0
        Oracle price, WAD (only with ``full``).
    p_up_n1 : int, default 0
        ``p_oracle_up`` of the loan's top band, WAD (only with ``full``).
    collateral : int, default 0
        Collateral in the AMM (``get_sum_xy(user)[1]``), token units (only with ``full``).
    collateral_precision : int, default 1
        ``10**(18 - collateral decimals)``.
    in_soft_liquidation : bool, default True
        Whether the oracle is inside or below the loan's bands (``ns[0] <= active_band``); the
        full term applies only when False.

    Returns
    -------
    int
        Health, WAD (signed).

    Raises
    ------
    ValueError
        If an amount is negative or not an int, ``liquidation_discount > 1e18`` or
        ``debt == 0`` (``Loan doesn't exist``).

    Notes
    -----
    Source: curve-stablecoin ``controller.vy`` ``_health`` (L1171-1208); both divisions act on
    non-negative values, so Vyper's truncating ``unsafe_div`` is a floor here.
    """
    for name, value in (("x_down", x_down), ("liquidation_discount", liquidation_discount),
                        ("price_oracle", price_oracle), ("p_up_n1", p_up_n1),
                        ("collateral", collateral), ("collateral_precision", collateral_precision)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if isinstance(debt, bool) or not isinstance(debt, int) or debt <= 0:
        raise ValueError("debt must be a positive int (the loan must exist)")
    if liquidation_discount > WAD:
        raise ValueError("liquidation_discount must be <= 1e18")
    h = x_down * (WAD - liquidation_discount) // debt - WAD
    if full and not in_soft_liquidation and price_oracle > p_up_n1:
        h += (price_oracle - p_up_n1) * collateral * collateral_precision // debt
    return h


def f_remove(frac: int, health_limit: int) -> int:
    """Share of the AMM position a hard liquidation of ``frac`` of the debt removes, WAD.

    ``f_remove = ((1 + h/2) / (1 + h) * (1 - frac) + frac) * frac`` with ``h`` the loan's
    ``liquidation_discount``: a partial liquidation takes slightly less than ``frac`` of the
    collateral so the remaining loan keeps its health.

    Parameters
    ----------
    frac : int
        Fraction of the debt repaid, WAD (``1e18`` = whole loan).
    health_limit : int
        The loan's ``liquidation_discount``, WAD.

    Returns
    -------
    int
        ``f_remove``, WAD, with the contract's two floor divisions.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``frac > 1e18``.

    Notes
    -----
    Source: curve-stablecoin ``controller.vy`` ``_get_f_remove`` (L1213). The liquidator repays
    ``debt * frac / 1e18`` and receives the AMM's x and y scaled by ``f_remove``.
    """
    for name, value in (("frac", frac), ("health_limit", health_limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int (WAD), got {value!r}")
    if frac > WAD:
        raise ValueError("frac must be <= 1e18")
    if frac == WAD:
        return WAD
    fr = (WAD + health_limit // 2) * (WAD - frac) // (WAD + health_limit)
    return (fr + frac) * frac // WAD


def loss_per_band(A: int) -> float:
    """Ideal soft-liquidation loss per band traversed: ``1 - sqrt((A - 1) / A)``.

    Parameters
    ----------
    A : int
        Band-width factor.

    Returns
    -------
    float
        Fraction of the band's value lost when converted at its geometric-mean price
        (about 0.5% for ``A = 100``).

    Raises
    ------
    ValueError
        If ``A < 2``.

    Notes
    -----
    Source: the simplified conversion model derived from curve-stablecoin ``AMM.vy`` ``get_xy_up``
    (https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a).
    """
    _check_a(A)
    return 1.0 - math.sqrt((A - 1) / A)


def band_sold_fraction(p: float, p_up: float, p_down: float) -> float:
    """Simplified model: fraction of a band's collateral sold at oracle price ``p``.

    Parameters
    ----------
    p : float
        Oracle price.
    p_up, p_down : float
        Band edges, ``p_up > p_down > 0``.

    Returns
    -------
    float
        ``clip((p_up - p) / (p_up - p_down), 0, 1)``.

    Raises
    ------
    ValueError
        If a price is not positive and finite or ``p_up <= p_down``.

    Notes
    -----
    Source: curve-stablecoin ``AMM.vy``
    (https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a).
    The exact adiabatic path (``AMM.vy get_xy_up``) differs
    from this linear rule by at most 0.2% of the band's collateral.
    """
    _check_price("p", p)
    if not _check_price("p_up", p_up) > _check_price("p_down", p_down):
        raise ValueError("p_up must be > p_down")
    return min(1.0, max(0.0, (p_up - p) / (p_up - p_down)))


@dataclass(frozen=True)
class BandConversion:
    """State of one band at an oracle price (simplified conversion model).

    Attributes
    ----------
    collateral : float
        Collateral the band still holds, collateral tokens.
    stablecoin : float
        Borrowed tokens the band holds for the collateral it sold.
    sold_fraction : float
        Share of the band's collateral converted, in [0, 1].
    """

    collateral: float
    stablecoin: float
    sold_fraction: float


def band_conversion(y: float, p: float, n: int, p_base: float, A: int) -> BandConversion:
    """Convert one band holding ``y`` collateral at oracle price ``p`` (any band, any loan size).

    Band ``n`` spans oracle prices ``(p_oracle_down(n), p_oracle_up(n)]``. Above it the band is
    all collateral; below it all borrowed token, ``y x sqrt(p_up x p_down)`` (its fully
    converted value in ``AMM.vy get_xy_up``); inside, the fraction :func:`band_sold_fraction`
    is sold at that geometric-mean price.

    Parameters
    ----------
    y : float
        Collateral deposited in the band, tokens, ``>= 0``.
    p : float
        Oracle price, borrowed token per collateral.
    n : int
        Band index.
    p_base : float
        Grid base price.
    A : int
        Band-width factor.

    Returns
    -------
    BandConversion

    Raises
    ------
    ValueError
        If ``y`` is negative or not finite, a price is not positive and finite, or ``A < 2``.

    Notes
    -----
    Source: the simplified conversion model of curvefi/curve-stablecoin
    (https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a)
    ``AMM.vy`` (band edges ``p_oracle_up``/``p_oracle_down``, ``get_xy_up``). The same rule as
    :func:`soft_liquidation_state`, which sums it over a loan's 4 to 50 bands.
    """
    if not (isinstance(y, (int, float)) and math.isfinite(y) and y >= 0):
        raise ValueError(f"y must be a non-negative finite number, got {y!r}")
    up, down = p_oracle_up(n, p_base, A), p_oracle_down(n, p_base, A)
    sold = band_sold_fraction(p, up, down)
    return BandConversion(collateral=y * (1.0 - sold), stablecoin=y * sold * math.sqrt(up * down),
                          sold_fraction=sold)


@dataclass(frozen=True)
class SoftLiquidationState:
    """Simplified position state while the oracle moves through its bands.

    Attributes
    ----------
    collateral : float
        Collateral still held, collateral tokens.
    stablecoin : float
        Borrowed tokens received for the collateral sold.
    bands_fully_converted : int
        Bands entirely in the borrowed token.
    """

    collateral: float
    stablecoin: float
    bands_fully_converted: int


def soft_liquidation_state(
    collateral: float, n1: int, n2: int, p: float, p_base: float, A: int
) -> SoftLiquidationState:
    """Simplified band conversion of a loan spread evenly over bands ``n1..n2``.

    Each band sells the fraction :func:`band_sold_fraction` of its collateral at its
    geometric-mean price ``sqrt(p_up * p_down)``; bands above ``p`` are untouched, bands below
    are fully converted.

    Parameters
    ----------
    collateral : float
        Total collateral deposited, tokens, ``>= 0``.
    n1, n2 : int
        First and last band, ``n2 - n1 + 1`` between ``MIN_TICKS`` (4) and ``MAX_TICKS`` (50).
    p : float
        Oracle price.
    p_base : float
        Grid base price.
    A : int
        Band-width factor.

    Returns
    -------
    SoftLiquidationState

    Raises
    ------
    ValueError
        If the band range is invalid or an input is not positive and finite.

    Notes
    -----
    Source: curve-stablecoin
    (https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a);
    ``y * sqrt(p_up * p_down)`` is the fully converted value of
    a band in ``AMM.vy get_xy_up`` (``y * p_up / SQRT_BAND_RATIO``). Real losses are larger
    (oracle lag, dynamic fee, round trips).
    """
    if not (math.isfinite(collateral) and collateral >= 0):
        raise ValueError(f"collateral must be a non-negative finite number, got {collateral!r}")
    n_bands = n2 - n1 + 1
    if not MIN_TICKS <= n_bands <= MAX_TICKS:
        raise ValueError(f"a loan spans {MIN_TICKS}..{MAX_TICKS} bands, got {n_bands}")
    per_band = collateral / n_bands
    left = stable = 0.0
    full = 0
    for n in range(n1, n2 + 1):
        band = band_conversion(per_band, p, n, p_base, A)
        full += band.sold_fraction == 1.0
        left += band.collateral
        stable += band.stablecoin
    return SoftLiquidationState(collateral=left, stablecoin=stable, bands_fully_converted=full)
