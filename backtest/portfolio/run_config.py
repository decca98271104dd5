"""Portfolio run configs: ``liqbt portfolio run CONFIG`` (``configs/luna-2022-portfolio.toml``).

One file describes an event, a multi-asset lending + perp book, an options book, the collateral
order policies to compare and the liquidation-at-risk snapshots::

    name = "luna-2022-portfolio"
    event = "luna-2022"                 # a key of data/events.toml
    seed = 7                            # seeds both generated books
    cache = "data/books/luna-2022-portfolio"   # generated books are cached here

    [tapes]
    missing = "hold"                    # error | hold (LUNA's Binance halt: hold)

    [portfolio]
    accounts = 1_000_000
    orders = ["protocol", "least_sensitive", "largest", "proportional"]
    [portfolio.params]                  # PortfolioParams except 'order' (docs/portfolios.md)
    [portfolio.market]                  # impact, cascade and oracle per asset (default: none)
    impact_model = "sqrt"               # none | linear | sqrt | amm
    cascade = true
    depth_usd = {BTC = 8e6, ETH = 5e6, SOL = 1e6, LUNA = 1e6}   # 1% depth per asset, USD
    [portfolio.keepers]                 # latency, profit, gas, capital (default: keepers act
    latency_minutes = 60                # at once, for free): the single-asset [keepers] fields
    requires_profit = true
    gas_price_gwei = 30                 # gas in USD at ETH's close (or eth_price_usd)
    capital_usd_per_step = 5e6          # per asset and step

    [options]
    accounts = 100_000
    underlyings = ["BTC", "ETH"]
    interval = "15m"
    iv_source = "realized"              # realized | auto | dvol
    iv_premium = 0.10                   # vol points added to realised volatility (fraction)
    breach_accounts = 20_000            # sample of short-option accounts for options vs perps
    [options.params]                    # OptionsParams (docs/options.md)

    [liquidation_at_risk]
    every = 6                           # portfolio steps between snapshots
    order = "protocol"                  # the order policy whose run is mapped
    shocks = [-0.40, -0.30, -0.20, -0.10, 0.0, 0.10, 0.20]
    options_every = 24                  # options steps between snapshots
    vol_shocks = [-0.10, 0.0, 0.20]     # implied-volatility shocks, fraction (0.2 = +20 points)

Relative paths are resolved against the current working directory; ``${VAR}`` in paths is
expanded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from backtest.engine.config import KeeperConfig
from backtest.errors import ConfigError
from backtest.options.generate import OptionsBookParams
from backtest.options.params import OptionsParams
from backtest.portfolio.book import PortfolioBookParams
from backtest.portfolio.market import PortfolioMarketParams
from backtest.portfolio.model import ORDER_NAMES, PortfolioParams
from backtest.strict import StrictModel
from backtest.validation import apply_overrides, describe, read_toml

OrderName = Literal["protocol", "least_sensitive", "largest", "proportional"]



def _increasing(values: list[float], what: str) -> list[float]:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{what} must be strictly increasing")
    return values


class TapesSection(StrictModel):
    """How the event's assets are aligned (:func:`backtest.tapes.align.align_tapes`)."""

    missing: Literal["error", "hold"] = "error"
    interval: str | None = None
    symbols: list[str] | None = Field(None, min_length=1)


class PortfolioSection(StrictModel):
    """The multi-asset lending + perp book and the order policies compared."""

    accounts: int = Field(ge=1)
    orders: list[OrderName] = Field(default_factory=lambda: list(ORDER_NAMES), min_length=1)
    book: Path | None = None
    params: PortfolioParams = PortfolioParams()
    book_params: PortfolioBookParams = PortfolioBookParams()
    market: PortfolioMarketParams = PortfolioMarketParams()
    keepers: KeeperConfig = KeeperConfig()

    @field_validator("orders")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("an order policy is listed twice")
        return v

    @model_validator(mode="after")
    def _order_not_in_params(self) -> PortfolioSection:
        if "order" in self.params.model_fields_set:
            raise ValueError("params.order is set by 'orders' (every listed order is run)")
        return self


class OptionsSection(StrictModel):
    """The options book, its implied-volatility tape and the options vs perps comparison."""

    accounts: int = Field(ge=1)
    underlyings: list[str] = Field(default_factory=lambda: ["BTC", "ETH"], min_length=1)
    interval: str = "15m"
    iv_source: Literal["realized", "auto", "dvol"] = "realized"
    iv_premium: float = Field(0.10, ge=0.0, le=2.0)
    dvol: dict[str, Path] = Field(default_factory=dict)
    breach_accounts: int = Field(20_000, ge=0)
    book: Path | None = None
    params: OptionsParams = OptionsParams()
    book_params: OptionsBookParams = OptionsBookParams()

    @model_validator(mode="after")
    def _check(self) -> OptionsSection:
        if len(set(self.underlyings)) != len(self.underlyings):
            raise ValueError("an underlying is listed twice")
        if self.iv_source != "realized":
            missing = [u for u in self.underlyings if u not in self.dvol]
            if missing:
                raise ValueError(f"iv_source '{self.iv_source}' needs a dvol file for "
                                 f"{missing} (options.dvol.<UNDERLYING> = path)")
        return self


class LarSection(StrictModel):
    """Liquidation-at-risk snapshots (``docs/liquidation-at-risk.md``)."""

    every: int = Field(6, ge=1)
    order: OrderName = "protocol"
    shocks: list[float] = Field(default_factory=lambda: [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2],
                                min_length=1)
    options_every: int = Field(24, ge=1)
    vol_shocks: list[float] = Field(default_factory=lambda: [0.0], min_length=1)

    @field_validator("shocks")
    @classmethod
    def _shocks(cls, v: list[float]) -> list[float]:
        if any(s <= -1.0 or s > 10.0 for s in v):
            raise ValueError("price shocks are fractions in (-1, 10]")
        return _increasing(v, "price shocks")

    @field_validator("vol_shocks")
    @classmethod
    def _vols(cls, v: list[float]) -> list[float]:
        if any(abs(s) > 5.0 for s in v):
            raise ValueError("vol shocks are fractions (0.2 = +20 vol points), within +-5")
        return _increasing(v, "vol shocks")


class PortfolioRunConfig(StrictModel):
    """A portfolio run (see the module docstring for the file layout)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    event: str = Field(min_length=1)
    seed: int = Field(7, ge=0)
    cache: Path | None = None
    tapes: TapesSection = TapesSection()
    portfolio: PortfolioSection
    options: OptionsSection | None = None
    liquidation_at_risk: LarSection = LarSection()

    @model_validator(mode="after")
    def _check(self) -> PortfolioRunConfig:
        if self.liquidation_at_risk.order not in self.portfolio.orders:
            raise ValueError(f"liquidation_at_risk.order '{self.liquidation_at_risk.order}' is "
                             f"not one of portfolio.orders {self.portfolio.orders}")
        return self


def _expand(raw: dict, keys: tuple[str, ...], path) -> None:
    holder = raw
    for k in keys[:-1]:
        holder = holder.get(k) if isinstance(holder, dict) else None
    if not isinstance(holder, dict):
        return
    value = holder.get(keys[-1])
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for sub, v in items:
        if not isinstance(v, str):
            continue
        out = os.path.expandvars(v)
        if "$" in out:
            name = ".".join(keys + ((sub,) if sub else ()))
            raise ConfigError(f"field '{name}': unset environment variable in {v!r}", path)
        if sub is None:
            holder[keys[-1]] = out
        else:
            value[sub] = out


def load_portfolio_config(path: str | Path, overrides: list[str] | None = None
                          ) -> PortfolioRunConfig:
    """Read and validate a portfolio run config.

    Parameters
    ----------
    path : str or Path
        TOML file.
    overrides : list of str, optional
        ``KEY=VALUE`` replacements with dotted keys (:func:`backtest.validation.apply_overrides`),
        e.g. ``portfolio.accounts=1000``.

    Returns
    -------
    PortfolioRunConfig

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, an unset environment variable in a path, or an invalid,
        missing or unknown (misspelled) field; the message names the file and the field.
    """
    raw = apply_overrides(read_toml(path), overrides, path)
    for keys in (("cache",), ("portfolio", "book"), ("options", "book"), ("options", "dvol")):
        _expand(raw, keys, path)
    try:
        return PortfolioRunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None


__all__ = ["LarSection", "OptionsSection", "PortfolioRunConfig", "PortfolioSection",
           "TapesSection", "load_portfolio_config"]
