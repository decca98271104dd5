"""The ``[portfolio]`` and ``[options]`` sections of portfolio and options sweeps.

Split from :mod:`backtest.sweep.config` (the sweep file's model) to keep each module small;
:class:`backtest.sweep.config.SweepConfig` holds one of them when its ``kind`` is
``portfolio`` or ``options``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from backtest.engine.config import KeeperConfig
from backtest.options.generate import OptionsBookParams
from backtest.options.params import OptionsParams
from backtest.portfolio.book import PortfolioBookParams
from backtest.portfolio.market import PortfolioMarketParams
from backtest.portfolio.model import PortfolioParams
from backtest.strict import StrictModel


class PortfolioSweepSection(StrictModel):
    """``[portfolio]`` of a portfolio sweep: the base policy and the book's distributions.

    Attributes
    ----------
    params : PortfolioParams
        The policy every cell starts from (``order`` comes from ``policies``); the book is
        drawn with its asset risk parameters, once per (event, seed), whatever the grid.
    book_params : PortfolioBookParams
        Distributions of the synthetic multi-asset book (``docs/portfolios.md``).
    market : PortfolioMarketParams
        Impact, cascade, oracle and ADL per asset of every cell (``[portfolio.market]`` of a
        portfolio run config; default: historical prices).
    keepers : KeeperConfig
        Keepers' latency, profit rule, gas and capital per asset of every cell
        (``[portfolio.keepers]``; default: keepers act at once, for free).
    """

    params: PortfolioParams = PortfolioParams()
    book_params: PortfolioBookParams = PortfolioBookParams()
    market: PortfolioMarketParams = PortfolioMarketParams()
    keepers: KeeperConfig = KeeperConfig()

    @model_validator(mode="after")
    def _no_order(self) -> PortfolioSweepSection:
        if "order" in self.params.model_fields_set:
            raise ValueError("params.order is set by 'policies' (the collateral orders swept)")
        return self


class OptionsSweepSection(StrictModel):
    """``[options]`` of an options sweep: the options book, its market and the base rule.

    Attributes
    ----------
    underlyings : list of str
        Base assets of the options (``BTC``, ``ETH``), aligned on one clock.
    interval : str
        Step of the options run (default 15m; an event's ``interval`` overrides it).
    iv_premium : float
        Vol points (fraction) added to the trailing realised volatility: the implied
        volatility tape (``docs/options.md``; DVOL files are not taken by sweeps).
    params : OptionsParams
        The liquidation rule every cell starts from; the book is drawn with it.
    book_params : OptionsBookParams
        Distributions of the synthetic options book.
    """

    underlyings: list[str] = Field(default_factory=lambda: ["BTC", "ETH"], min_length=1)
    interval: str = "15m"
    iv_premium: float = Field(0.10, ge=0.0, le=2.0)
    params: OptionsParams = OptionsParams()
    book_params: OptionsBookParams = OptionsBookParams()


SINGLE_ASSET_EVENT_FIELDS = ("symbols", "missing")
PORTFOLIO_EVENT_FIELDS = ("symbol", "venue", "market", "book_params")
OPTIONS_EVENT_FIELDS = ("symbol", "venue", "market", "book_params", "symbols", "start", "end")


__all__ = ["OPTIONS_EVENT_FIELDS", "PORTFOLIO_EVENT_FIELDS", "SINGLE_ASSET_EVENT_FIELDS",
           "OptionsSweepSection", "PortfolioSweepSection"]
