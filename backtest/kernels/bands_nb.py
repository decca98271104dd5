"""numba kernels of soft liquidation in bands (Curve crvUSD / LlamaLend LLAMMA).

A loan of family ``SOFT_BANDS`` deposits its collateral ``y0`` evenly over ``N`` bands below a
top price ``top``: band ``k`` (``0 <= k < N``) covers oracle prices ``(top r^(k+1), top r^k]``
with ``r = (A - 1) / A`` (``AMM.vy`` ``_p_oracle_up``: ``p_base x ((A - 1) / A)^n``).

Conversion model (simplified from curve-stablecoin ``AMM.vy`` ``get_xy_up``,
https://github.com/curvefi/curve-stablecoin/tree/cf1d05fb6bf7c608973cc41786b2e1fd81dc3a6a):

- The AMM's composition follows the oracle (arbitrage keeps it there): at oracle price ``p``,
  bands above ``p`` hold only stablecoin, bands below only collateral, and the band holding
  ``p`` has sold the fraction ``(p_up - p) / (p_up - p_down)`` of its collateral
  (:func:`band_collateral_nb`; the exact adiabatic path differs by at most 0.2%).
- Collateral leaves a band at the band's geometric-mean price ``sqrt(p_up x p_down) = p_up x
  sqrt(r)`` and is bought back at the same price (``AMM.vy get_xy_up``: ``y x p_up /
  SQRT_BAND_RATIO``; :func:`band_stablecoin_nb`).
- Loss model: the counterparty is an arbitrageur who trades with the AMM and offsets in the
  market at the step's execution price ``pe`` and never at a loss. A sale therefore pays the
  loan ``min(band value, units x pe)`` and a buy-back costs it ``max(band value, units x
  pe)``: in a slow market the loan loses the gap between the band's mean price and the market
  inside the band (a slow crossing loses about ``1 / (8 A)`` of the band's value each way);
  when the price gaps through bands within a step it sells at the market, not at the bands'
  prices. What the
  loan gives up goes to the arbitrageur (``SOFT_LOSS``). Not modelled: the AMM fee (it
  accrues to the bands and offsets part of the loss), the oracle's own EMA (use an oracle
  model of the run), interest moving the grid.
- A buy-back spends at most the stablecoin the loan's bands hold. A loan back above its bands
  whose buy-backs were cut short holds less collateral than it deposited; its bands then hold
  what it has (:func:`leave_soft_liquidation_nb`).

Health (``controller.vy`` ``_health`` with ``full=True``), as a ratio that is < 1 when the
controller's health is < 0: ``(x_down x (1 - liquidation_discount) + max(p - top, 0) x y) /
debt`` where ``x_down`` is the stablecoin held plus what the remaining collateral would give
converted down through its bands; the price term applies only above the bands. Below 1 the
loan is hard-liquidated: the liquidator repays the whole debt and receives all the AMM holds
(``liquidate`` with ``frac = 1``: ``f_remove = 1``), so the borrower keeps nothing.

Account model: ``units`` is the collateral still in the bands (``y``), ``cash = x - debt``
with ``x`` the stablecoin the bands hold, so ``equity = cash + units x price`` as for every
account; the per-account band state is an array of :data:`BAND_FIELDS` columns.

Why over 400 lines: it is one mechanism (crvUSD LLAMMA bands) as small jitted helpers the
single-asset kernel calls; about half of it is their numpydoc sections.
"""

from __future__ import annotations

import numpy as np

from backtest._jit import njit, njit_parallel, prange
from backtest.kernels.enums import BAND_FIELDS, Product
from backtest.kernels.settlement_nb import split_penalty_nb

_TOP = BAND_FIELDS.index("top_price")
_DEPOSITED = BAND_FIELDS.index("deposited")
_DEBT = BAND_FIELDS.index("debt")
_SOFT_UNITS = BAND_FIELDS.index("soft_units")
_SOFT_PROCEEDS = BAND_FIELDS.index("soft_proceeds")
_SOFT_LOSS = BAND_FIELDS.index("soft_loss")
_LOAN = int(Product.LOAN)

#: Relative size below which a band trade is rounding, not a trade.
TRADE_DUST = 1e-12


@njit
def band_collateral_nb(p, top, deposited, ratio, n_bands):
    """Return the collateral a loan's bands hold at oracle price ``p`` (asset units).

    Parameters
    ----------
    p : float
        Oracle price, USD per unit, > 0.
    top : float
        Top price of the loan's first band, USD per unit.
    deposited : float
        Collateral deposited over the bands, units.
    ratio : float
        ``(A - 1) / A``, in (0, 1).
    n_bands : int
        Bands the collateral is spread over.

    Returns
    -------
    float
        Collateral left in the bands, asset units, in ``[0, deposited]``.
    """
    if not p < top:
        return deposited
    k = int(np.floor(np.log(p / top) / np.log(ratio)))
    if k >= n_bands:
        return 0.0
    up = top * ratio ** k
    sold = min(max((up - p) / (up * (1.0 - ratio)), 0.0), 1.0)
    return max(deposited * (1.0 - (k + sold) / n_bands), 0.0)


@njit
def band_stablecoin_nb(y, top, deposited, ratio, n_bands):
    """Return the stablecoin (USD) the bands receive converting ``deposited`` down to ``y``.

    Bands convert from the top: band ``k`` sells its ``deposited / n_bands`` units at ``top x
    r^k x sqrt(r)`` (its geometric-mean price). Parameters as :func:`band_collateral_nb`,
    with ``y`` the collateral left, units.

    Parameters
    ----------
    y : float
        Collateral left in the bands, asset units.
    top : float
        Top price of the loan's first band, USD per unit.
    deposited : float
        Collateral deposited over the bands, asset units.
    ratio : float
        ``(A - 1) / A``, in (0, 1).
    n_bands : int
        Bands the collateral is spread over.

    Returns
    -------
    float
        Stablecoin the bands hold after converting ``deposited - y`` units, USD, >= 0.
    """
    per_band = deposited / n_bands
    if per_band <= 0.0:
        return 0.0
    sold = min(max((deposited - y) / per_band, 0.0), float(n_bands))
    j = min(int(np.floor(sold)), n_bands)
    rj = ratio ** j
    return per_band * top * np.sqrt(ratio) * ((1.0 - rj) / (1.0 - ratio) + (sold - j) * rj)


@njit
def bands_health_nb(units, cash, p, row, ratio, n_bands, liquidation_discount):
    """Return the health of a loan in bands at oracle price ``p``; hard-liquidatable iff < 1.

    ``(x_down x (1 - liquidation_discount) + max(p - top, 0) x units) / debt`` (see the
    module docstring); ``inf`` without debt. ``row`` is the loan's band state, shape
    (N_BAND_FIELDS,).

    Parameters
    ----------
    units : float
        Collateral in the bands, asset units.
    cash : float
        ``x - debt``: stablecoin the bands hold minus the debt, USD.
    p : float
        Oracle price, USD per unit.
    row : ndarray, shape (N_BAND_FIELDS,), float64
        The loan's band state (:data:`backtest.kernels.enums.BAND_FIELDS`; top price USD per
        unit, deposited units, debt USD, running trade totals).
    ratio : float
        ``(A - 1) / A``, in (0, 1).
    n_bands : int
        Bands the collateral is spread over.
    liquidation_discount : float
        Controller's liquidation discount, fraction.

    Returns
    -------
    float
        Health ratio (dimensionless), ``inf`` without debt.
    """
    debt = row[_DEBT]
    if debt <= 0.0:
        return np.inf
    top = row[_TOP]
    deposited = row[_DEPOSITED]
    full = band_stablecoin_nb(0.0, top, deposited, ratio, n_bands)
    x_down = cash + debt + full - band_stablecoin_nb(units, top, deposited, ratio, n_bands)
    h = x_down * (1.0 - liquidation_discount)
    if p > top:
        h += (p - top) * units
    return h / debt


@njit
def soft_trade_nb(units, cash, p, row, ratio, n_bands):
    """Return the collateral a loan's bands buy (> 0) or sell (< 0) at oracle price ``p``.

    The bands move to :func:`band_collateral_nb` at ``p``; a buy-back is scaled down to what
    the stablecoin held pays at the bands' prices or ``p``, whichever is higher (its cost per
    unit rises with the amount, so scaling keeps it within the stablecoin).

    Parameters
    ----------
    units : float
        Collateral in the bands, asset units.
    cash : float
        ``x - debt``, USD.
    p : float
        Oracle price, USD per unit.
    row : ndarray, shape (N_BAND_FIELDS,), float64
        The loan's band state (:data:`backtest.kernels.enums.BAND_FIELDS`; top price USD per
        unit, deposited units, debt USD, running trade totals).
    ratio : float
        ``(A - 1) / A``, in (0, 1).
    n_bands : int
        Bands the collateral is spread over.

    Returns
    -------
    float
        Collateral to trade, asset units: > 0 buy-back, < 0 sale, 0 none.
    """
    if row[_DEBT] <= 0.0:
        return 0.0
    top = row[_TOP]
    deposited = row[_DEPOSITED]
    target = band_collateral_nb(p, top, deposited, ratio, n_bands)
    q = target - units
    if abs(q) <= TRADE_DUST * deposited:
        return 0.0
    if q > 0.0:
        x = cash + row[_DEBT]
        cost = max(band_stablecoin_nb(units, top, deposited, ratio, n_bands)
                   - band_stablecoin_nb(target, top, deposited, ratio, n_bands), q * p)
        if x <= 0.0:
            return 0.0
        if cost > x:
            q *= x / cost
    return q


@njit
def apply_soft_trade_nb(units, cash, q, pe, row, ratio, n_bands):
    """Trade ``q`` units of collateral (> 0 buy-back, < 0 sale) for loan bands at market ``pe``.

    A sale pays ``min(band value, |q| x pe)``, a buy-back costs ``max(band value, q x pe)``;
    the difference to ``|q| x pe`` is the loss to the arbitrageur (>= 0). A buy-back whose
    cost at ``pe`` exceeds the stablecoin held is scaled down to what it pays (it was sized at
    the decision price; the step's impact was computed on the decided amount). Updates the
    running totals in ``row``.

    Parameters
    ----------
    units : float
        Collateral in the bands, asset units.
    cash : float
        ``x - debt``, USD.
    q : float
        Collateral to trade, asset units (> 0 buy-back, < 0 sale).
    pe : float
        Market (execution) price, USD per unit.
    row : ndarray, shape (N_BAND_FIELDS,), float64
        The loan's band state (:data:`backtest.kernels.enums.BAND_FIELDS`; top price USD per
        unit, deposited units, debt USD, running trade totals).
        Updated in place.
    ratio : float
        ``(A - 1) / A``, in (0, 1).
    n_bands : int
        Bands the collateral is spread over.

    Returns
    -------
    tuple
        ``(units_after, cash_after, q_executed, proceeds, loss)``: proceeds > 0 for a sale,
        < 0 for a buy-back, USD.
    """
    top = row[_TOP]
    deposited = row[_DEPOSITED]
    before = band_stablecoin_nb(units, top, deposited, ratio, n_bands)
    value = band_stablecoin_nb(units + q, top, deposited, ratio, n_bands) - before
    if q > 0.0:
        x = cash + row[_DEBT]
        cost = max(-value, q * pe)
        if cost > x:  # the cost per unit rises with q: scaling keeps it within x
            q *= x / cost
            value = band_stablecoin_nb(units + q, top, deposited, ratio, n_bands) - before
    market = -q * pe
    proceeds = min(value, market)  # a sale's proceeds (> 0) or a buy-back's cost (< 0)
    loss = market - proceeds
    row[_SOFT_UNITS] -= q
    row[_SOFT_PROCEEDS] += proceeds
    row[_SOFT_LOSS] += loss
    return units + q, cash + proceeds, q, proceeds, loss


@njit
def leave_soft_liquidation_nb(units, cash, p, row):
    """Let a loan back above its bands with no stablecoin left leave soft liquidation.

    Its buy-backs were cut short by the stablecoin its sales lost, so it holds less than it
    deposited; from now on its bands hold what it has (crvUSD: a loan with no stablecoin in
    the AMM is not in soft liquidation). Returns True when ``row``'s deposit was reset.

    Parameters
    ----------
    units : float
        Collateral in the bands, asset units.
    cash : float
        ``x - debt``, USD.
    p : float
        Oracle price, USD per unit.
    row : ndarray, shape (N_BAND_FIELDS,), float64
        The loan's band state (:data:`backtest.kernels.enums.BAND_FIELDS`; top price USD per
        unit, deposited units, debt USD, running trade totals).
        Updated in place.

    Returns
    -------
    bool
        True when the deposit was reset to ``units``.
    """
    debt = row[_DEBT]
    if debt > 0.0 and p >= row[_TOP] and units < row[_DEPOSITED] and (
            cash + debt <= TRADE_DUST * debt):
        row[_DEPOSITED] = units
        return True
    return False


@njit
def apply_bands_liquidation_nb(units, cash, pe, keeper_share):
    """Hard-liquidate a loan in bands: the debt is repaid, the AMM's holdings seized.

    The collateral ``units`` is sold at ``pe``; the equity ``cash + units x pe``, if positive,
    is the penalty, split by :func:`backtest.kernels.settlement_nb.split_penalty_nb`: the
    liquidator's ``keeper_share`` of it, the rest to the insurance fund; if negative it is bad
    debt.

    Parameters
    ----------
    units : float
        Collateral in the bands, asset units.
    cash : float
        ``x - debt``, USD.
    pe : float
        Market (execution) price, USD per unit.
    keeper_share : float
        Liquidator's share of the seized equity, fraction; the rest goes to the insurance fund.

    Returns
    -------
    tuple
        ``(units_after, cash_after, keeper_fee, insurance_fee, bad_debt)``, all after 0.
    """
    equity = cash + units * pe  # everything is sold: the penalty is the equity seized
    cash2, keeper, insurance, bad = split_penalty_nb(equity, 0.0, max(equity, 0.0), keeper_share,
                                                     True, True)
    return 0.0, cash2, keeper, insurance, bad


@njit
def bands_key_nb(units, cash, row, ratio, n_bands, liquidation_discount):
    """Trigger key of a loan in bands: its top price, ``inf`` once in soft liquidation.

    A loan that has converted collateral must be seen every step (the price may come back),
    as must one already hard-liquidatable at its top price (more leveraged than crvUSD lets a
    loan be created, so liquidatable above its bands); one without debt never (0).

    Parameters
    ----------
    units : float
        Collateral in the bands, asset units.
    cash : float
        ``x - debt``, USD.
    row : ndarray, shape (N_BAND_FIELDS,), float64
        The loan's band state (:data:`backtest.kernels.enums.BAND_FIELDS`; top price USD per
        unit, deposited units, debt USD, running trade totals).
    ratio : float
        ``(A - 1) / A``, in (0, 1).
    n_bands : int
        Bands the collateral is spread over.
    liquidation_discount : float
        Controller's liquidation discount, fraction.

    Returns
    -------
    float
        Trigger key, USD per unit: the top price, ``inf`` (seen every step) or 0 (never).
    """
    if row[_DEBT] <= 0.0:
        return 0.0
    top = row[_TOP]
    if units < row[_DEPOSITED] or bands_health_nb(units, cash, top, row, ratio, n_bands,
                                                  liquidation_discount) < 1.0:
        return np.inf
    return top


@njit_parallel
def place_bands_nb(product, units, cash, ratio, n_bands, loan_discount, liquidation_discount,
                   price, bands, key):
    """Place every loan's bands as crvUSD does when the loan is created, in place.

    The top band is the highest whose collateral, converted down with ``loan_discount``,
    covers the debt: ``top = debt / ((1 - loan_discount) x deposited x G)`` with ``G = sqrt(r)
    x (1 - r^N) / (N (1 - r))`` the mean band price per unit of top price (``controller.vy``
    ``get_y_effective`` and ``_calculate_debt_n1``; the grid rounding of ``n1`` is ignored),
    but not above ``price`` (crvUSD creates no loan whose bands start above the oracle; a loan
    more leveraged than ``loan_discount`` allows starts at the edge of soft liquidation).
    Loans without debt, and perps, get no bands.

    Parameters
    ----------
    product : ndarray, shape (N,), int8
    units, cash : ndarray, shape (N,), float64
        Account state at the start of the window (units, USD).
    ratio : float
        ``(A - 1) / A``.
    n_bands : int
        Bands per loan.
    loan_discount, liquidation_discount : float
        crvUSD ``loan_discount`` and ``liquidation_discount``, fractions.
    price : float
        Oracle price at the start of the window, USD per unit.
    bands : ndarray, shape (N, N_BAND_FIELDS), float64
        Written.
    key : ndarray, shape (N,), float64
        Trigger keys; the loans' are replaced by :func:`bands_key_nb`.
    """
    mean_price = np.sqrt(ratio) * (1.0 - ratio ** n_bands) / (n_bands * (1.0 - ratio))
    for i in prange(units.shape[0]):
        for k in range(bands.shape[1]):
            bands[i, k] = 0.0
        if product[i] != _LOAN or units[i] <= 0.0 or cash[i] >= 0.0:
            continue
        bands[i, _DEPOSITED] = units[i]
        bands[i, _DEBT] = -cash[i]
        bands[i, _TOP] = min(-cash[i] / ((1.0 - loan_discount) * units[i] * mean_price), price)
        key[i] = bands_key_nb(units[i], cash[i], bands[i], ratio, n_bands, liquidation_discount)
