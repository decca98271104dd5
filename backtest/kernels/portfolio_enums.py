"""Integer enums, parameter structs and output layouts of the portfolio kernel.

Shared by :mod:`backtest.kernels.portfolio_nb` (numba), its twin
:mod:`backtest.kernels.portfolio_reference` and the Python layer :mod:`backtest.portfolio`.
See ``docs/portfolios.md`` for the account model.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class AccountKind(IntEnum):
    """What an account is; selects its health rule and its liquidation.

    LENDING
        Several collaterals (positions with units > 0) against one stablecoin debt
        (``cash = -debt <= 0``). Health factor ``HF = sum_i(units_i x price_i x LT_i) / debt``
        (Aave v3 ``GenericLogic.calculateUserAccountData``,
        https://github.com/aave-dao/aave-v3-origin/tree/fd1fbd9150426ca8ace9cee45b4acf912ae84f5b);
        liquidatable when ``HF < 1``.
    CROSS_PERP
        One margin balance shared by several linear perps (units signed: > 0 long, < 0 short).
        ``equity = cash + sum_i(units_i x price_i)``; maintenance margin
        ``MM = sum_i(m_i x |units_i| x price_i)`` (dYdX v4 ``TNC < TMMR``, ``lib/margin/risk.go``,

        https://github.com/dydxprotocol/v4-chain/tree/84d4664bae71e3a077adaac67fb77ad19cd28d30);
        liquidatable when ``equity < MM``.
    ISOLATED_PERP
        One perp position with its own margin: the cross rule with exactly one position. A
        trader with several isolated positions has one account per position (same owner).
    """

    LENDING = 0
    CROSS_PERP = 1
    ISOLATED_PERP = 2


class OrderPolicy(IntEnum):
    """Which collateral is seized (lending) or position closed (perps) first.

    Ties are broken by the larger position value, then by position order in the account.

    PROTOCOL
        The liquidator's choice under Aave v3 rules: the collateral with the highest
        liquidation bonus (it may pick any collateral, ``LiquidationLogic.executeLiquidationCall``
        takes ``collateralAsset`` as an argument, and picks the most profitable). Perps: the
        position with the highest liquidation penalty (the keeper's best deal).
    LEAST_SENSITIVE
        The asset with the lowest trailing realised volatility known at the step (the
        kernel's ``sensitivity`` input, :attr:`backtest.tapes.align.AlignedTapes.realized_vol`
        by default) first: the claim to test is that keeping volatile assets and selling calm
        ones lowers forced selling into the crash.
    LARGEST
        The position with the largest value ``|units| x price`` first.
    PROPORTIONAL
        Every collateral (position) at once, in proportion to its value: the debt repaid is
        split by collateral value; perps close the same fraction of every position.
    """

    PROTOCOL = 0
    LEAST_SENSITIVE = 1
    LARGEST = 2
    PROPORTIONAL = 3


#: Per-asset risk parameters (one record per aligned asset). Rates are fractions.
ASSET_DTYPE = np.dtype(
    [
        ("liquidation_threshold", np.float64),  # LT: HF weight of the collateral, (0, 1)
        ("loan_to_value", np.float64),  # LTV: borrowing power at origination, < LT
        ("liquidation_bonus", np.float64),  # collateral seized = repaid x (1 + bonus) / price
        ("maintenance_margin_rate", np.float64),  # perp maintenance, fraction of notional
        ("liquidation_penalty", np.float64),  # perp penalty, fraction of the closed notional
    ],
    align=True,
)

#: Parameters of one portfolio liquidation policy (one record).
PORTFOLIO_POLICY_DTYPE = np.dtype(
    [
        ("order", np.int64),  # OrderPolicy
        ("trigger", np.int64),  # backtest.kernels.enums.TriggerPrice (EXTREME or CLOSE)
        ("close_factor", np.float64),  # lending: share of the debt one liquidation may repay
        ("full_close_health_factor", np.float64),  # lending: at or below this HF the cap is 1
        ("protocol_fee", np.float64),  # lending: share of the bonus to the insurance fund
        ("perp_keeper_share", np.float64),  # perps: share of the penalty to the keeper
        ("target_health", np.float64),  # perps: equity / MM restored by a liquidation, >= 1
    ],
    align=True,
)


class PortfolioMetric(IntEnum):
    """Columns of the per-step aggregate array ``step_out`` (all float64, USD or counts).

    Values 0..``N_SUMMED_PORTFOLIO_METRICS - 1`` are sums over accounts (chunk order); the rest
    are the insurance fund's step (:func:`backtest.kernels.settlement_nb.socialise_step_nb`),
    run by the kernel at the end of each step.
    """

    N_LIQUIDATABLE = 0  # accounts liquidatable at the step's decision prices (before)
    N_LIQUIDATIONS = 1  # liquidation events (at most one per account per step)
    N_LENDING = 2  # events on lending accounts
    N_CROSS = 3  # events on cross-margin perp accounts
    N_ISOLATED = 4  # events on isolated perp accounts
    N_BANKRUPT = 5  # events that left bad debt
    N_RECORDS = 6  # positions touched (one record each)
    LIQUIDATED_NOTIONAL = 7  # sum of |units| x fill price over records, USD
    DEBT_REPAID = 8  # lending debt repaid by liquidators, USD
    KEEPER_FEES = 9  # bonus / penalty to keepers, USD
    INSURANCE_FEES = 10  # protocol fee / penalty share to the insurance fund, USD
    BAD_DEBT = 11  # shortfall written off, USD
    INSURANCE_DRAW = 12  # bad debt the insurance fund paid in the step, USD
    INSURANCE_FUND = 13  # fund balance after the step (fees in first, then the draw), USD
    SOCIALISED_LOSS = 14  # bad debt the fund could not cover, USD


class AssetMetric(IntEnum):
    """Last axis of the per-step, per-asset array ``asset_out`` (T, A, K) (float64)."""

    NOTIONAL = 0  # |units| x fill price liquidated, USD
    COLLATERAL_SEIZED = 1  # lending collateral seized, USD
    PERP_CLOSED = 2  # perp notional closed, USD
    UNITS = 3  # |units| liquidated, asset units
    KEEPER_FEES = 4  # USD
    INSURANCE_FEES = 5  # USD
    BAD_DEBT = 6  # bad debt attributed to the asset (pro rata of the bankrupting event), USD
    N_RECORDS = 7  # positions of the asset touched


class AssetMarketMetric(IntEnum):
    """Last axis of the per-step, per-asset market array ``market_out`` (T, A, K) (float64).

    Written by :mod:`backtest.kernels.portfolio_market_nb` (market impact, cascade feedback and
    oracle of each asset; ``docs/portfolios.md``), the bankrupt perps of each asset by the
    kernel and its auto-deleveraging by :func:`backtest.kernels.adl_nb.
    auto_deleverage_positions_nb`. Without impact and oracle: factors 1, flows 0, oracle price
    the asset's close.
    """

    PRICE_FACTOR = 0  # simulated / historical price of the step (cascade displacement)
    EXECUTION_FACTOR = 1  # fill / decision price of the step's liquidations of the asset
    NET_FLOW = 2  # net liquidation flow at decision prices, USD (> 0 buys, < 0 sells)
    ORACLE_PRICE = 3  # price the triggers read, USD per unit (the simulated close without one)
    IMPACT_COST = 4  # units sold x (decision - fill) + units bought x (fill - decision), USD
    DEPTH = 5  # flow that moves the price 1% in the step, USD (NaN: no impact)
    BAD_DEBT_LONG = 6  # bad debt left by bankrupt perp longs of the asset, USD
    BAD_DEBT_SHORT = 7  # bad debt left by bankrupt perp shorts of the asset, USD
    BANKRUPT_UNITS_LONG = 8  # |units| closed by the liquidations that left BAD_DEBT_LONG
    BANKRUPT_UNITS_SHORT = 9  # |units| closed by the liquidations that left BAD_DEBT_SHORT
    ADL_NOTIONAL = 10  # notional auto-deleveraged (waterfall ADL), USD at the step's close
    ADL_TRANSFER = 11  # shortfall covered by deleveraged counterparties, USD
    ADL_ACCOUNTS = 12  # counterparty accounts deleveraged


N_PORTFOLIO_METRICS = len(PortfolioMetric)
#: Metrics summed over accounts; the fund's columns follow them.
N_SUMMED_PORTFOLIO_METRICS = int(PortfolioMetric.INSURANCE_DRAW)
N_ASSET_METRICS = len(AssetMetric)
N_ASSET_MARKET_METRICS = len(AssetMarketMetric)

#: Integer fields of a record (``rec_i[:, k]``), in order.
PREC_I_FIELDS = ("step", "account", "asset")
#: Float fields of a record (``rec_f[:, k]``), in order.
PREC_F_FIELDS = (
    "units_closed",  # asset units removed from the position (signed like the position)
    "fill_price",  # USD per unit
    "keeper_fee",  # USD
    "insurance_fee",  # USD
    "bad_debt",  # USD attributed to this record
    "health_before",  # health factor (lending) or equity / MM (perps) before, at fill prices
    "debt_repaid",  # lending: debt repaid with this collateral, USD (perps: 0)
)
