"""The settlement layer shared by every kernel: penalty split, bad debt, insurance fund, ADL.

One set of rules, called by the single-asset step loop (:mod:`backtest.kernels.steps_nb`,
through :mod:`backtest.kernels.liquidation_nb` and :mod:`backtest.kernels.bands_nb`), the
portfolio kernel (:mod:`backtest.kernels.portfolio_nb`) and the options kernel
(:mod:`backtest.kernels.options_nb`); ``docs/settlement.md`` describes them:

- **one liquidation** (:func:`split_penalty_nb`): the penalty goes first to the keeper (its
  share, always paid, as a liquidator's bonus is), then to the insurance fund out of the equity
  left (:func:`fund_share_nb`); a closed account left with negative cash is bad debt, written
  off (:func:`write_off_nb`). A lending seizure pays the fund's share of its bonus by the same
  rule (:func:`lending_fund_fee_nb`); an event that closes several positions attributes its
  bad debt pro rata (:func:`attribute_bad_debt_nb`).
- **one step** (:func:`insurance_fund_step_nb`): the fund receives the step's insurance fees,
  pays the step's keeper incentives (Dutch auctions), then the step's bad debt; what it cannot
  pay is handed to auto-deleveraging (:func:`adl_handoff_nb`, a pending ADL in the market state
  of the single-asset engine: :func:`settle_step_nb`), queued in Maker's surplus buffer
  (:func:`surplus_buffer_nb`) or socialised (:func:`socialise_step_nb`, the portfolio and
  options kernels).

Sources: Drift ``controller/liquidation.rs`` ``liquidate_perp`` (liquidator fee, then the
insurance fund's fee out of the margin left;
https://github.com/drift-labs/protocol-v2/tree/0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62); Aave
v3 ``LiquidationLogic.sol`` (``liquidationProtocolFee``, ``_burnBadDebt``;
https://github.com/aave-dao/aave-v3-origin/tree/fd1fbd9150426ca8ace9cee45b4acf912ae84f5b);
Maker dss ``vow.sol`` (https://github.com/makerdao/dss/tree/fa4f6630afb0624d04a003e920b0d71a00331d98).
The reference twins (:mod:`backtest.kernels.reference`, ``portfolio_reference``,
``options_reference``) restate each rule independently.
"""

from __future__ import annotations

from backtest._jit import njit
from backtest.kernels.enums import MarketState, StepMetric, Waterfall

_INSURANCE = int(StepMetric.INSURANCE_FEES)
_AUCTION_INCENTIVES = int(StepMetric.AUCTION_INCENTIVES)
_BAD_DEBT = int(StepMetric.BAD_DEBT)
_BAD_LONG = int(StepMetric.BAD_DEBT_PERP_LONG)
_BAD_SHORT = int(StepMetric.BAD_DEBT_PERP_SHORT)
_BANKRUPT_UNITS_LONG = int(StepMetric.BANKRUPT_UNITS_LONG)
_BANKRUPT_UNITS_SHORT = int(StepMetric.BANKRUPT_UNITS_SHORT)
_INS_DRAW = int(StepMetric.INSURANCE_DRAW)
_INS_FUND = int(StepMetric.INSURANCE_FUND)
_SOCIALISED = int(StepMetric.SOCIALISED_LOSS)
_DEBT_HEALED = int(StepMetric.DEBT_HEALED)
_DEBT_QUEUED = int(StepMetric.DEBT_QUEUED)
_ADL = int(Waterfall.ADL)
_SURPLUS_BUFFER = int(Waterfall.SURPLUS_BUFFER)


@njit
def fund_share_nb(fee, equity):
    """Return what the insurance fund receives of its ``fee``: at most the equity left.

    Parameters
    ----------
    fee : float
        The fund's share of a liquidation penalty (or of a lending bonus), USD (>= 0).
    equity : float
        The account's equity after the liquidation and the keeper's share, USD (any sign).

    Returns
    -------
    float
        ``min(fee, max(equity, 0))``, USD: a bankrupt account's shortfall is bad debt, not a
        fee the fund would pay back.
    """
    return min(fee, max(equity, 0.0))


@njit
def write_off_nb(cash, closed):
    """Write off a closed account's negative cash as bad debt.

    Parameters
    ----------
    cash : float
        The account's cash after its liquidation or settlement, USD.
    closed : bool
        Whether it holds nothing any more (no position, collateral or open leg).

    Returns
    -------
    tuple of float
        ``(cash_after, bad_debt)``, USD: ``(0, -cash)`` for a closed account with ``cash < 0``,
        ``(cash, 0)`` otherwise.
    """
    if closed and cash < 0.0:
        return 0.0, -cash
    return cash, 0.0


@njit
def split_penalty_nb(cash_closed, held_value, fee, keeper_share, from_cash, closed):
    """Settle one liquidation's penalty: keeper first, then the fund, the shortfall bad debt.

    The keeper receives ``keeper_share x fee`` always; the fund the rest of ``fee`` out of the
    equity left after the keeper (:func:`fund_share_nb`), or out of cash only when
    ``from_cash`` (a loan whose whole debt is repaid keeps its surplus collateral). A
    ``closed`` account left with negative cash is written off (:func:`write_off_nb`).
    ``cash_after = cash_closed - keeper_fee - insurance_fee + bad_debt``.

    Parameters
    ----------
    cash_closed : float
        The account's cash after the close and before any penalty, USD (cash plus the
        proceeds of the units closed).
    held_value : float
        Value of what the account still holds after the close at the fill prices, USD
        (``units_after x price``; 0 when everything is closed).
    fee : float
        The whole penalty, USD (>= 0): rate x closed notional (perps, loans), the seized
        equity (bands), rate x underlying notional (options).
    keeper_share : float
        Keeper's share of the penalty, fraction in [0, 1].
    from_cash : bool
        Pay the fund from cash only (see above).
    closed : bool
        The account holds nothing after the close: negative cash is bad debt.

    Returns
    -------
    tuple of float
        ``(cash_after, keeper_fee, insurance_fee, bad_debt)``, USD, fees and bad debt >= 0.
    """
    keeper = keeper_share * fee
    cash1 = cash_closed - keeper
    available = cash1 if from_cash else cash1 + held_value
    insurance = fund_share_nb(fee - keeper, available)
    cash2, bad = write_off_nb(cash1 - insurance, closed)
    return cash2, keeper, insurance, bad


@njit
def lending_fund_fee_nb(cash, repay, fee, clears, lo, hi, pos_units, prices):
    """Pay the insurance fund's share of one lending seizure's bonus out of the equity left.

    The keeper's share is in the collateral it seized; the fund's share ``fee`` is paid as far
    as the equity left allows (:func:`fund_share_nb`, the rule of :func:`split_penalty_nb`),
    the unpaid part repaying debt instead; in full when the seizure repays the whole debt with
    collateral left (``clears``). Below the fee, the debt left equals the collateral left
    exactly (no rounding dust of debt). Aave v3 ``liquidationProtocolFee``.

    Parameters
    ----------
    cash : float
        The account's cash before the seizure, USD (``-debt``).
    repay : float
        Debt the seizure repays with the whole fee paid (``seized value - bonus``), USD.
    fee : float
        The fund's share of the bonus, USD (>= 0).
    clears : bool
        Whether the seizure repays the whole debt with collateral left.
    lo, hi : int
        The account's positions are ``lo:hi`` of the flat arrays.
    pos_units : ndarray, shape (P,), float64
        Units after the seizure.
    prices : ndarray, shape (>= hi - lo,), float64
        Fill price of each of the account's positions, USD per unit.

    Returns
    -------
    tuple of float
        ``(cash_after, debt_repaid, insurance_fee)``, USD.
    """
    if clears:
        return cash + repay, repay, fee
    collateral = 0.0
    for k in range(lo, hi):
        if pos_units[k] > 0.0:
            collateral += pos_units[k] * prices[k - lo]
    equity = cash + repay + fee + collateral  # after the keeper's share, before the fund's
    paid = fund_share_nb(fee, equity)
    if paid == fee:
        return cash + repay, repay, fee
    if paid > 0.0:  # the fund takes what equity is left: no debt beyond the collateral
        return -collateral, -collateral - cash, paid
    return cash + repay + fee, repay + fee, 0.0


@njit
def attribute_bad_debt_nb(bad, j0, j1, rec_f):
    """Split one event's bad debt over its records pro rata to their notional ``|units| x price``.

    Parameters
    ----------
    bad : float
        Bad debt the event left, USD (>= 0).
    j0, j1 : int
        The event's records are rows ``j0:j1`` of ``rec_f``.
    rec_f : ndarray, shape (cap, 7), float64
        Float record fields of the portfolio kernel
        (:data:`backtest.kernels.portfolio_enums.PREC_F_FIELDS`): column 0 the units closed,
        1 the fill price (USD per unit); column 4 (bad debt, USD) is written.

    Notes
    -----
    The last record takes what the others left, so the shares add up to ``bad`` exactly.
    """
    total = 0.0
    for r in range(j0, j1):
        total += abs(rec_f[r, 0]) * rec_f[r, 1]
    if j1 == j0:
        return
    given = 0.0
    for r in range(j0, j1 - 1):
        share = bad * (abs(rec_f[r, 0]) * rec_f[r, 1]) / total if total > 0.0 else 0.0
        rec_f[r, 4] = share
        given += share
    rec_f[j1 - 1, 4] = bad - given


@njit
def insurance_fund_step_nb(fund, fees, incentives, bad):
    """Run the insurance fund through one step: fees in, then incentives and bad debt out.

    Parameters
    ----------
    fund : float
        Balance before the step, USD (>= 0).
    fees : float
        Insurance fees the step's liquidations paid, USD (>= 0).
    incentives : float
        Keeper incentives the protocol owes for the step (Dutch-auction ``tip`` and ``chip``,
        which Maker mints as ``sin``), USD (>= 0; 0 for kernels without auctions).
    bad : float
        The step's bad debt, USD (>= 0).

    Returns
    -------
    tuple of float
        ``(fund_after, incentives_paid, bad_debt_drawn)``, USD; the fund never goes below 0,
        and ``incentives - incentives_paid + bad - bad_debt_drawn`` is what it left uncovered.
    """
    fund = fund + fees
    paid = min(fund, incentives)
    fund -= paid
    draw = min(fund, bad)
    fund -= draw
    return fund, paid, draw


@njit
def socialise_step_nb(fund, fees, bad):
    """Run one step of the fund of a kernel whose uncovered bad debt is socialised.

    The portfolio and options kernels: :func:`insurance_fund_step_nb` without incentives.

    Parameters
    ----------
    fund : float
        Balance before the step, USD (>= 0).
    fees : float
        Insurance fees received in the step, USD (>= 0).
    bad : float
        Bad debt left in the step, USD (>= 0).

    Returns
    -------
    tuple of float
        ``(fund_after, draw, socialised)``, USD, with ``draw + socialised = bad``.
    """
    fund, _, draw = insurance_fund_step_nb(fund, fees, 0.0, bad)
    return fund, draw, bad - draw


@njit
def adl_handoff_nb(shortfall, bad, bad_long, bad_short):
    """Split a step's uncovered bad debt into the perp sides' ADL shares and the rest.

    Auto-deleveraging closes profitable opposite-side traders for the perp part of the
    shortfall (``docs/settlement.md``); the loans' part is socialised (lending protocols do not
    deleverage). Each side's share is its part of the step's bad debt.

    Parameters
    ----------
    shortfall : float
        Bad debt the insurance fund did not cover, USD (> 0).
    bad : float
        The step's whole bad debt, USD (>= ``shortfall``, > 0).
    bad_long, bad_short : float
        Bad debt left by bankrupt perp longs and shorts in the step, USD (>= 0).

    Returns
    -------
    tuple of float
        ``(from_longs, from_shorts, socialised)``, USD: what the opposite sides of bankrupt
        longs and shorts must cover, and the rest (loans).
    """
    from_longs = shortfall * bad_long / bad
    from_shorts = shortfall * bad_short / bad
    return from_longs, from_shorts, shortfall - from_longs - from_shorts


@njit
def surplus_buffer_nb(fund, queued, shortfall, last):
    """Queue a step's uncovered shortfall in Maker's surplus buffer and heal the queue.

    Maker's ``Vow`` (dss ``vow.sol``): penalties accrue to the surplus (the fund); bad debt it
    does not cover is queued (``fess``) and healed by later surplus (``heal``); debt auctions
    (``flop``, new MKR) cover what is still queued at the window's ``last`` step (socialised,
    borne outside the book). The step's own bad debt and incentives are already drawn from
    ``fund``; what is left heals earlier debt, then ``shortfall`` joins the queue.

    Parameters
    ----------
    fund : float
        Surplus after the step's fees and draws, USD (>= 0).
    queued : float
        Debt queued in earlier steps, USD (>= 0).
    shortfall : float
        The step's bad debt and keeper incentives the surplus did not cover, USD (>= 0).
    last : bool
        Whether this is the window's last step.

    Returns
    -------
    tuple of float
        ``(fund, healed, queued, flopped)``, USD: the surplus after healing, the earlier debt
        it healed, the queue after the step, and the debt flopped (socialised) at the last
        step. ``queued + shortfall = healed + queued' + flopped``.
    """
    healed = min(fund, queued)
    fund -= healed
    queued = queued - healed + shortfall
    flopped = 0.0
    if last:
        flopped = queued
        queued = 0.0
    return fund, healed, queued, flopped


@njit
def settle_step_nb(t, step_out, market_state, waterfall, last):
    """Settle step ``t`` of the single-asset engine: insurance fund, then ADL or socialised.

    :func:`insurance_fund_step_nb` on the step's fees, auction incentives and bad debt; with
    ``Waterfall.ADL`` the perp share of what is left is handed to auto-deleveraging
    (:func:`adl_handoff_nb`), pending in the ``ADL_*`` slots of ``market_state`` (the
    dispatcher runs it); the rest is socialised, or queued (``SURPLUS_BUFFER``,
    :func:`surplus_buffer_nb`).

    Parameters
    ----------
    t : int
        The step.
    step_out : ndarray, shape (T, N_STEP_METRICS), float64
        Per-step aggregates (:class:`backtest.kernels.enums.StepMetric`); row ``t``'s fund
        columns (draw, balance, socialised loss, debt healed and queued) are written.
    market_state : ndarray, shape (MARKET_STATE_SIZE,), float64
        :class:`backtest.kernels.enums.MarketState`: the fund balance and the surplus queue
        (USD) are updated, and a pending ADL written.
    waterfall : int
        :class:`backtest.kernels.enums.Waterfall`.
    last : int
        The window's last step (the surplus queue is flopped there).

    Returns
    -------
    bool
        True when an auto-deleveraging is left pending (``MarketState.ADL_STEP = t``).
    """
    incentives = step_out[t, _AUCTION_INCENTIVES]
    bad = step_out[t, _BAD_DEBT]
    fund, paid, draw = insurance_fund_step_nb(market_state[MarketState.INSURANCE_FUND],
                                              step_out[t, _INSURANCE], incentives, bad)
    if waterfall == _SURPLUS_BUFFER:
        fund, healed, queued, flopped = surplus_buffer_nb(
            fund, market_state[MarketState.SURPLUS_QUEUED], incentives - paid + bad - draw,
            t == last)
        market_state[MarketState.INSURANCE_FUND] = fund
        market_state[MarketState.SURPLUS_QUEUED] = queued
        step_out[t, _INS_DRAW] = draw + paid + healed
        step_out[t, _INS_FUND] = fund
        step_out[t, _DEBT_HEALED] = healed
        step_out[t, _DEBT_QUEUED] = queued
        step_out[t, _SOCIALISED] = flopped
        return False
    market_state[MarketState.INSURANCE_FUND] = fund
    step_out[t, _INS_DRAW] = draw + paid
    step_out[t, _INS_FUND] = fund
    step_out[t, _SOCIALISED] = incentives - paid
    shortfall = bad - draw
    if shortfall <= 0.0:
        return False
    perp = step_out[t, _BAD_LONG] + step_out[t, _BAD_SHORT]
    if waterfall != _ADL or perp <= 0.0:
        step_out[t, _SOCIALISED] += shortfall
        return False
    from_longs, from_shorts, rest = adl_handoff_nb(shortfall, bad, step_out[t, _BAD_LONG],
                                                   step_out[t, _BAD_SHORT])
    step_out[t, _SOCIALISED] += rest
    market_state[MarketState.ADL_SHORTFALL_LONG] = from_longs
    market_state[MarketState.ADL_UNITS_LONG] = step_out[t, _BANKRUPT_UNITS_LONG]
    market_state[MarketState.ADL_SHORTFALL_SHORT] = from_shorts
    market_state[MarketState.ADL_UNITS_SHORT] = step_out[t, _BANKRUPT_UNITS_SHORT]
    market_state[MarketState.ADL_STEP] = t
    return True

