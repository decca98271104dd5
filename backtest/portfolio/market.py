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
from pydantic import Field, model_validator

from backtest.engine.config import OracleConfig
from backtest.engine.dispatch import market_params
from backtest.engine.market import steps_of
from backtest.errors import ConfigError
from backtest.jit_compat import kernel_records
from backtest.kernels.enums import ImpactModel, OracleModel
from backtest.kernels.portfolio_enums import N_ASSET_MARKET_METRICS
from backtest.kernels.portfolio_market_nb import PortfolioMarket, new_market_state
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
    """

    impact_model: Literal["none", "linear", "sqrt", "amm"] = "none"
    depth_usd: dict[str, float] = Field(default_factory=dict)
    cascade: bool = False
    permanent_fraction: float = Field(0.5, ge=0.0, le=1.0)
    transient_half_life_minutes: float = Field(30.0, gt=0.0)
    oracle: OracleConfig = OracleConfig()

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
        """True when the run's prices are the historical candles (no impact, no oracle)."""
        return self.impact_model == "none" and self.oracle.model == "market"


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
        steps_of(o.heartbeat_minutes, interval_seconds))
    return PortfolioMarket(open_, depth, kernel_records(record), new_market_state(n_assets),
                           np.zeros((t_steps, n_assets, N_ASSET_MARKET_METRICS)))


__all__ = ["PortfolioMarketParams", "portfolio_market"]
