"""Market impact, cascade feedback and oracle of each asset of a portfolio run.

:class:`PortfolioMarketParams` is the ``[portfolio.market]`` section of a portfolio run config
(and the ``market`` argument of :func:`backtest.portfolio.simulate.simulate_portfolio`); its
fields carry the single-asset config's names (``[market]`` and ``[oracle]``,
:mod:`backtest.engine.config`). :func:`portfolio_market` packs it into the kernel's
:class:`backtest.kernels.portfolio_market_nb.PortfolioMarket`: the single-asset engine's
``MARKET_DTYPE`` record (:func:`backtest.engine.dispatch.market_params`) and a depth per step
and asset. ``docs/portfolios.md`` ("Market impact, cascades and oracles") describes the model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from backtest.engine.config import KeeperConfig, OracleConfig
from backtest.engine.dispatch import market_params
from backtest.engine.market import gas_cost_per_step, latency_steps, steps_of
from backtest.errors import ConfigError
from backtest.jit_compat import kernel_records
from backtest.kernels.adl_nb import auto_deleverage_positions_nb
from backtest.kernels.enums import ImpactModel, MarketState, OracleModel, Waterfall
from backtest.kernels.portfolio_enums import (
    N_ASSET_MARKET_METRICS,
    AccountKind,
    AssetMarketMetric,
    PortfolioMetric,
)
from backtest.kernels.portfolio_market_nb import (
    PortfolioKeepers,
    PortfolioMarket,
    new_market_state,
)
from backtest.strict import StrictModel
from backtest.tapes.schema import parse_symbol


class PortfolioMarketParams(StrictModel):
    """How each asset's liquidation flow moves its price, and what the triggers read.

    Attributes
    ----------
    impact_model : {"none", "linear", "sqrt", "amm"}
        Price impact of each asset's net liquidation flow per step
        (:mod:`backtest.kernels.impact_nb`); one model for every asset.
    depth_usd : dict of str to float
        Flow (USD) that moves each asset's price by 1%, by base asset (``BTC``, ...), constant
        over the window. Required for every asset with an impact model, unless
        :func:`backtest.portfolio.simulate.simulate_portfolio` is given a ``depth`` array.
    cascade : bool
        Each asset's impact feeds back into the prices its later steps trigger and fill on.
    permanent_fraction : float
        Share (0..1) of each step's price move that never decays.
    transient_half_life_minutes : float
        Half-life of the rest of the move, minutes.
    oracle : OracleConfig
        The price triggers read (``market``, ``lagged``, ``twap`` or ``chainlink``: one oracle
        per asset with these parameters; ``mark`` needs a mark tape per asset and is refused).
        With an oracle other than ``market`` liquidations are decided and filled at the close,
        as in the single-asset engine.
    waterfall : {"socialise", "adl"}
        What covers bad debt once the insurance fund is empty: nobody (socialised loss), or
        auto-deleveraging per asset (:class:`backtest.kernels.enums.Waterfall`): the bad debt
        of bankrupt perp longs (shorts) of an asset is covered by profitable shorts (longs) of
        that asset, ranked by ``adl_ranking``; lending bad debt is socialised. (The single-
        asset engine has these as policy fields; here they sit with the market so that the
        portfolio policy's fields and tables stay as they were.)
    adl_ranking : {"binance", "bitmex", "hyperliquid", "dydx"}
        :class:`backtest.kernels.enums.AdlRanking`.
    seed : int
        Seed of dYdX's random starting account.
    """

    impact_model: Literal["none", "linear", "sqrt", "amm"] = "none"
    depth_usd: dict[str, float] = Field(default_factory=dict)
    cascade: bool = False
    permanent_fraction: float = Field(0.5, ge=0.0, le=1.0)
    transient_half_life_minutes: float = Field(30.0, gt=0.0)
    oracle: OracleConfig = OracleConfig()
    waterfall: Literal["socialise", "adl"] = "socialise"
    adl_ranking: Literal["binance", "bitmex", "hyperliquid", "dydx"] = "binance"
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> PortfolioMarketParams:
        if self.oracle.model == "mark":
            raise ValueError("oracle.model 'mark' is not available for portfolios (no mark "
                             "tape per asset): use market, lagged, twap or chainlink")
        bad = [k for k, v in self.depth_usd.items() if not v > 0]
        if bad:
            raise ValueError(f"depth_usd of {bad} must be > 0 (USD)")
        return self

    @property
    def is_historical(self) -> bool:
        """True for the default market: historical candles (no impact, no oracle), no ADL."""
        return (self.impact_model == "none" and self.oracle.model == "market"
                and self.waterfall == "socialise")


def portfolio_market(params: PortfolioMarketParams | None, open_: np.ndarray,
                     symbols: tuple[str, ...] | list[str], interval_seconds: int,
                     depth: np.ndarray | None = None) -> PortfolioMarket:
    """Return the kernel's per-asset market of a run.

    Parameters
    ----------
    params : PortfolioMarketParams or None
        None: no impact, no cascade, the market as oracle.
    open_ : ndarray, shape (T, A), float64
        Historical opens, USD per unit (the oracles' price before the first step).
    symbols : sequence of str
        The assets, in column order (``BTC/USDT``, ...); ``depth_usd`` is keyed by base asset.
    interval_seconds : int
        Step length, seconds (converts the half-life and oracle minutes to steps).
    depth : ndarray, shape (T, A), optional
        Depth per step and asset, USD; overrides ``depth_usd``.

    Returns
    -------
    PortfolioMarket

    Raises
    ------
    ConfigError
        An impact model without a depth for some asset (named), or a ``depth`` array of the
        wrong shape.
    """
    params = params or PortfolioMarketParams()
    open_ = np.ascontiguousarray(open_, dtype=np.float64)
    t_steps, n_assets = open_.shape
    if depth is not None:
        depth = np.ascontiguousarray(depth, dtype=np.float64)
        if depth.shape != (t_steps, n_assets):
            raise ConfigError(f"market depth has shape {depth.shape}, expected "
                              f"{(t_steps, n_assets)} (steps, assets)")
    elif params.impact_model == "none":
        depth = np.full((t_steps, n_assets), np.nan)
    else:
        bases = [parse_symbol(s)[0] for s in symbols]
        missing = [b for b in bases if b not in params.depth_usd]
        if missing:
            raise ConfigError(f"field 'market.depth_usd': impact_model "
                              f"'{params.impact_model}' needs the 1% depth (USD) of every asset; "
                              f"missing {missing}")
        depth = np.ascontiguousarray(np.broadcast_to(
            np.array([params.depth_usd[b] for b in bases], dtype=np.float64),
            (t_steps, n_assets)))
    o = params.oracle
    record = market_params(
        ImpactModel[params.impact_model.upper()], params.permanent_fraction,
        params.transient_half_life_minutes * 60.0 / interval_seconds, params.cascade,
        OracleModel[o.model.upper()], steps_of(o.lag_minutes, interval_seconds),
        steps_of(o.twap_minutes, interval_seconds), o.deviation,
        steps_of(o.heartbeat_minutes, interval_seconds), seed=params.seed)
    return PortfolioMarket(open_, depth, kernel_records(record), new_market_state(n_assets),
                           np.zeros((t_steps, n_assets, N_ASSET_MARKET_METRICS)),
                           int(Waterfall[params.waterfall.upper()]))


def portfolio_keepers(keepers: KeeperConfig | None, timestamp_ms: np.ndarray, close: np.ndarray,
                      symbols: tuple[str, ...] | list[str], interval_seconds: int,
                      n_accounts: int, gas_usd: np.ndarray | None = None) -> PortfolioKeepers:
    """Return the kernel's keepers of a run (``[portfolio.keepers]``, the single-asset fields).

    Latency is converted to whole steps as in the single-asset engine
    (:func:`backtest.engine.market.market_record`); gas per liquidation record is
    :func:`backtest.engine.market.gas_cost_per_step` (``gas_units x gas price x 1e-9 x ETH
    price``, the ETH price being ``eth_price_usd`` or, when ETH or WETH is one of the assets,
    its close); ``capital_usd_per_step`` applies to every asset.

    Parameters
    ----------
    keepers : KeeperConfig or None
        None: keepers act at once, for free, without a capital limit.
    timestamp_ms : ndarray, shape (T,), int64
        Step open times (for a gas tape).
    close : ndarray, shape (T, A), float64
        Historical closes, USD per unit.
    symbols : sequence of str
        The assets, in column order.
    interval_seconds : int
        Step length, seconds.
    n_accounts : int
        Accounts N (the size of the latency flags).
    gas_usd : ndarray, shape (T,), optional
        Gas of one liquidation record per step, USD; overrides the config's gas.

    Returns
    -------
    PortfolioKeepers

    Raises
    ------
    ConfigError
        A gas price without an ETH price (no ``eth_price_usd`` and no ETH asset), or a
        ``gas_usd`` array of the wrong shape.
    """
    k = keepers or KeeperConfig()
    t_steps = close.shape[0]
    latency = latency_steps(k.latency_minutes, interval_seconds)
    if gas_usd is not None:
        gas = np.ascontiguousarray(gas_usd, dtype=np.float64)
        if gas.shape != (t_steps,):
            raise ConfigError(f"gas_usd has shape {gas.shape}, expected ({t_steps},) (steps)")
    else:
        bases = [parse_symbol(sym)[0].upper() for sym in symbols]
        eth = next((a for a, b in enumerate(bases) if b in ("ETH", "WETH")), None)
        gas, _ = gas_cost_per_step(k, np.asarray(timestamp_ms),
                                   close[:, eth] if eth is not None else close[:, 0],
                                   "ETH" if eth is not None else bases[0])
        gas = np.ascontiguousarray(gas, dtype=np.float64)
    flagged = np.full(n_accounts if latency > 0 else 0, -1, np.int32)
    return PortfolioKeepers(int(latency), bool(k.requires_profit),
                            float(k.capital_usd_per_step or 0.0), gas, flagged)


def deleverage_step(mkt: PortfolioMarket, book, equity_start: np.ndarray, close: np.ndarray,
                    risk: np.ndarray, step_out: np.ndarray, ranking: int, seed: int
                    ) -> pl.DataFrame:
    """Run the auto-deleveraging the kernel left pending; book it in the step's metrics.

    For every asset and side with a pending shortfall
    (:func:`backtest.kernels.portfolio_market_nb.adl_handoff_step_nb`),
    :func:`backtest.kernels.adl_nb.auto_deleverage_positions_nb` at the step's simulated close;
    what the counterparties do not cover is added to the step's socialised loss.

    Parameters
    ----------
    mkt : PortfolioMarket
        Its state's ``ADL_*`` slots are read and cleared; ``out``'s ``ADL_*`` columns written.
    book : PortfolioBook
        The accounts' current state (updated: counterparties' units and cash).
    equity_start : ndarray, shape (N,), float64
        Each account's equity at the window's first open, USD.
    close : ndarray, shape (T, A), float64
        Historical closes, USD per unit.
    risk : ndarray, shape (A,), ``ASSET_DTYPE``
    step_out : ndarray, shape (T, N_PORTFOLIO_METRICS), float64
        ``SOCIALISED_LOSS`` of the step is added to.
    ranking, seed : int
        :class:`AdlRanking` and dYdX's seed.

    Returns
    -------
    polars.DataFrame
        One row per position deleveraged: ``step``, ``account``, ``asset``, ``units_closed``
        (signed), ``price`` (USD per unit) and ``transfer`` (USD paid to cover the shortfall).
    """
    S, X = MarketState, AssetMarketMetric
    t = int(mkt.state[0, S.ADL_STEP])
    prices = np.ascontiguousarray(close[t] * mkt.out[t, :, X.PRICE_FACTOR])
    perp = book.kind != AccountKind.LENDING
    parts = []
    for a in range(close.shape[1]):
        for side, shortfall_slot, units_slot in ((1, S.ADL_SHORTFALL_LONG, S.ADL_UNITS_LONG),
                                                 (-1, S.ADL_SHORTFALL_SHORT, S.ADL_UNITS_SHORT)):
            shortfall, units = mkt.state[a, shortfall_slot], mkt.state[a, units_slot]
            if shortfall <= 0.0:
                continue
            covered = 0.0
            if units > 0.0:
                idx, closed, transfer, covered = auto_deleverage_positions_nb(
                    a, side, shortfall, units, prices, ranking, seed, t, perp, book.offsets,
                    book.pos_asset, book.pos_units, book.cash, equity_start,
                    float(risk[a]["maintenance_margin_rate"]))
                parts.append(pl.DataFrame({
                    "step": np.full(len(idx), t, np.int32), "account": idx,
                    "asset": np.full(len(idx), a, np.int16), "units_closed": closed,
                    "price": np.full(len(idx), prices[a]), "transfer": transfer}))
                mkt.out[t, a, X.ADL_NOTIONAL] += np.abs(closed).sum() * prices[a]
                mkt.out[t, a, X.ADL_TRANSFER] += covered
                mkt.out[t, a, X.ADL_ACCOUNTS] += len(idx)
            step_out[t, PortfolioMetric.SOCIALISED_LOSS] += shortfall - covered
    for slot in (S.ADL_SHORTFALL_LONG, S.ADL_UNITS_LONG, S.ADL_SHORTFALL_SHORT,
                 S.ADL_UNITS_SHORT):
        mkt.state[:, slot] = 0.0
    mkt.state[0, S.ADL_STEP] = -1.0
    return pl.concat(parts) if parts else empty_adl_frame()


def empty_adl_frame() -> pl.DataFrame:
    """Return the (empty) frame of :func:`deleverage_step`'s rows, with its schema."""
    return pl.DataFrame(schema={"step": pl.Int32, "account": pl.Int64, "asset": pl.Int16,
                                "units_closed": pl.Float64, "price": pl.Float64,
                                "transfer": pl.Float64})


__all__ = ["PortfolioMarketParams", "deleverage_step", "empty_adl_frame", "portfolio_keepers",
           "portfolio_market"]
