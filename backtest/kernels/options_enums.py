"""Integer enums, the parameter struct and record layout of the options kernels.

The options engine (:mod:`backtest.kernels.options_nb`) works on instruments (one row per
listed option: underlying, call/put, strike, expiry) and accounts holding legs in them
(ragged: ``leg_start[a]:leg_start[a + 1]`` indexes the legs of account ``a``). Everything a
run's options parameters say is packed into one ``OPTIONS_PARAMS_DTYPE`` record.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class OptionType(IntEnum):
    """European option type."""

    PUT = 0
    CALL = 1


class SpreadMode(IntEnum):
    """How the liquidation's closing price departs from the mark.

    VOL_POINTS
        Shorts are bought back at the Black-76 price at ``iv + spread`` and longs sold at
        ``iv - spread`` (floored at ``vol_floor``), ``spread`` in vol as a fraction (0.05 =
        5 vol points): the way option market makers quote, wider in USD for long-dated,
        at-the-money options.
    MARK_FRACTION
        Shorts are bought back at ``mark x (1 + spread)`` and longs sold at
        ``mark x (1 - spread)``, ``spread`` a fraction of the mark.
    """

    VOL_POINTS = 0
    MARK_FRACTION = 1


class PricePoint(IntEnum):
    """Where in a candle an options account is valued (rows of the instrument arrays)."""

    LOW = 0
    HIGH = 1
    CLOSE = 2


N_POINTS = len(PricePoint)

#: Options parameters passed to kernels (one record). Rates are fractions.
OPTIONS_PARAMS_DTYPE = np.dtype(
    [
        ("trigger", np.int64),  # TriggerPrice: EXTREME (low and high) or CLOSE
        ("spread_mode", np.int64),  # SpreadMode
        ("spread", np.float64),  # vol fraction (VOL_POINTS) or fraction of mark
        ("penalty_rate", np.float64),  # liquidation penalty, fraction of underlying notional
        ("keeper_share", np.float64),  # share of the penalty paid to the keeper; rest to fund
        ("rate", np.float64),  # discount rate r, fraction per year
        ("contingency_rate", np.float64),  # margin add-on per short option, fraction of F
        ("vol_floor", np.float64),  # smallest volatility used anywhere, fraction
        ("vol_shock_power", np.float64),  # vol shock scales as (30 / days)^power
        ("vol_shock_min_days", np.float64),  # days-to-expiry floor of that scaling
        ("vol_shock_max_down", np.float64),  # largest relative vol fall in the grid, fraction
    ],
    align=True,
)


class OptionsStepMetric(IntEnum):
    """Columns of the per-step aggregate array of the options kernel (all float64, USD).

    Values 0..``N_SUMMED_OPTIONS_METRICS - 1`` are sums over accounts (chunk order); the rest
    are per-step values. Book Greeks and margin are of the legs still open at the step's
    close, valued at the close.
    """

    N_LIQUIDATIONS = 0  # liquidation events (each closes every leg of an account)
    N_BANKRUPT = 1  # events that left bad debt
    LIQUIDATED_NOTIONAL = 2  # sum of |quantity| x underlying price of legs closed, USD
    LIQUIDATED_MARK = 3  # sum of the signed mark value of the legs closed, USD
    SPREAD_PAID = 4  # mark minus closing proceeds, paid to the market, USD (>= 0)
    KEEPER_FEES = 5  # penalty paid to keepers, USD
    INSURANCE_FEES = 6  # penalty paid to the insurance fund, USD
    BAD_DEBT = 7  # shortfall beyond the account's equity, USD
    CASH_DELTA_LIQUIDATION = 8  # change of the accounts' cash by liquidations, USD
    SETTLEMENT_CASH = 9  # cash paid to (received by) accounts at expiry settlement, USD
    N_SETTLED_LEGS = 10  # legs settled at expiry
    N_OPEN = 11  # accounts with an open leg after the step
    EQUITY = 12  # sum of equity (cash + option value) at the close, USD
    OPTION_VALUE = 13  # sum of the signed mark value of open legs at the close, USD
    MAINTENANCE_MARGIN = 14  # sum of the scenario maintenance margin at the close, USD
    DELTA_USD = 15  # sum of quantity x delta x F: USD change per 1 USD/USD move, USD
    GAMMA_USD = 16  # sum of quantity x gamma x F^2 / 100: delta USD change per 1% move
    VEGA_USD = 17  # sum of quantity x vega / 100: USD change per vol point
    N_BREACHED_CLOSE = 18  # open accounts whose equity < maintenance margin at the close
    # per-step values below (not sums over chunks)
    INSURANCE_DRAW = 19  # bad debt covered by the insurance fund, USD
    INSURANCE_FUND = 20  # insurance fund balance after the step, USD
    SOCIALISED_LOSS = 21  # bad debt the fund could not cover, USD


N_OPTIONS_METRICS = len(OptionsStepMetric)
#: Metrics that are sums over chunks.
N_SUMMED_OPTIONS_METRICS = int(OptionsStepMetric.INSURANCE_DRAW)

#: Float fields of a liquidation record (``rec_f[a, k]``), in this order; USD unless noted.
OPTIONS_REC_F_FIELDS = (
    "decision_price",  # underlying price the liquidation was decided and executed at
    "iv",  # implied volatility of the step, fraction
    "equity_before",  # cash + mark value at the decision price
    "margin_before",  # scenario maintenance margin at the decision price
    "cash_before",
    "mark_value",  # signed mark value of the legs closed
    "spread_paid",  # mark_value - closing proceeds (>= 0)
    "notional",  # sum |quantity| x decision price
    "keeper_fee",
    "insurance_fee",
    "bad_debt",
    "cash_after",
    "delta_usd",  # account Greeks at the decision price before the liquidation
    "gamma_usd",
    "vega_usd",
)
#: Integer fields of a liquidation record (``rec_i[a, k]``).
OPTIONS_REC_I_FIELDS = ("step", "account", "price_point", "n_legs")
