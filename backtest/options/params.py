"""Options parameters: the scenario grid of the maintenance margin and the liquidation rule.

Both are strict pydantic models (unknown fields are errors); :func:`pack_options_params`
turns them into the ``OPTIONS_PARAMS_DTYPE`` record the kernels take. ``docs/options.md``
explains every default.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from backtest.errors import ConfigError
from backtest.kernels.enums import TriggerPrice
from backtest.kernels.options_enums import OPTIONS_PARAMS_DTYPE, SpreadMode
from backtest.strict import StrictModel
from backtest.validation import describe


class ScenarioGrid(StrictModel):
    """The stress scenarios of the portfolio-style maintenance margin.

    The margin is the worst loss of an account's options over every pair (price shock, vol
    shock), plus a contingency per short option (``docs/options.md``). The defaults follow
    the shape of Deribit's portfolio margin (price moves over an evenly spaced range with a
    zero bucket; volatility up / same / down, scaled for time to expiry as
    ``(30 / days)^0.30``; a contingency per net short option; Deribit documentation,
    "Portfolio Margin") and Dederi's description of the same model (11 price shocks over
    +-15% x 3 volatility scenarios = 33 Black-model revaluations). CME SPAN's risk arrays
    (16 scenarios of price scan range in thirds x volatility up/down) are the older form.

    Attributes
    ----------
    price_range : float
        Largest relative price move, fraction (0.15: -15% .. +15%).
    price_steps : int
        Evenly spaced price shocks over ``[-price_range, price_range]``; odd, so 0 is one.
    vol_up, vol_down : float
        Relative implied-volatility rise and fall for a 30-day option, fractions (0.38: the
        volatility times 1.38).
    vol_power : float
        Shocks of an option ``days`` to expiry are scaled by ``(30 / days)^vol_power``.
    vol_min_days : float
        Days-to-expiry floor of that scaling (options about to expire are shocked as if this
        far out).
    vol_max_down : float
        Largest relative volatility fall after scaling, fraction (< 1).
    contingency_rate : float
        Add-on per unit of short option, fraction of the underlying price (Deribit: 0.01 BTC
        per net short option).
    """

    price_range: float = Field(0.15, gt=0.0, lt=1.0)
    price_steps: int = Field(11, ge=1)
    vol_up: float = Field(0.38, ge=0.0)
    vol_down: float = Field(0.25, ge=0.0)
    vol_power: float = Field(0.30, ge=0.0)
    vol_min_days: float = Field(1.0, gt=0.0)
    vol_max_down: float = Field(0.75, ge=0.0, lt=1.0)
    contingency_rate: float = Field(0.01, ge=0.0)

    @model_validator(mode="after")
    def _odd(self) -> ScenarioGrid:
        if self.price_steps % 2 == 0:
            raise ValueError("price_steps must be odd, so that 'no price move' is a scenario")
        return self

    def price_shocks(self) -> np.ndarray:
        """Return the relative price shocks, shape (price_steps,) float64, increasing."""
        if self.price_steps == 1:
            return np.zeros(1)
        return np.linspace(-self.price_range, self.price_range, self.price_steps)

    def vol_factors(self) -> np.ndarray:
        """Return the relative vol shocks for a 30-day option: ``[-vol_down, 0, vol_up]``."""
        return np.array([-self.vol_down, 0.0, self.vol_up])

    @property
    def n_scenarios(self) -> int:
        """Number of (price, vol) scenarios."""
        return self.price_steps * 3


class OptionsParams(StrictModel):
    """How options accounts are margined and liquidated.

    Attributes
    ----------
    trigger : {"extreme", "close"}
        ``extreme``: an account is tested at the candle's low and high and liquidated at the
        worse of the two (the perp kernel's default); ``close``: only at the close.
    spread_mode : {"vol_points", "mark_fraction"}
        How a liquidation's closing price departs from the mark (:class:`SpreadMode`).
    spread : float
        Vol points as a fraction (0.05 = 5 vol points) or a fraction of the mark.
    penalty_rate : float
        Liquidation penalty, fraction of the closed legs' underlying notional.
    keeper_share : float
        Share of the penalty paid to the keeper (the rest goes to the insurance fund).
    rate : float
        Discount rate of Black-76, fraction per year.
    vol_floor : float
        Smallest volatility used for any valuation, fraction.
    insurance_fund_usd : float
        Insurance fund balance at the start, USD.
    grid : ScenarioGrid
        Stress scenarios of the maintenance margin.
    """

    trigger: Literal["extreme", "close"] = "extreme"
    spread_mode: Literal["vol_points", "mark_fraction"] = "vol_points"
    spread: float = Field(0.05, ge=0.0)
    penalty_rate: float = Field(0.005, ge=0.0, lt=1.0)
    keeper_share: float = Field(0.5, ge=0.0, le=1.0)
    rate: float = Field(0.0, ge=-0.5, le=1.0)
    vol_floor: float = Field(0.05, gt=0.0)
    insurance_fund_usd: float = Field(0.0, ge=0.0)
    grid: ScenarioGrid = ScenarioGrid()

    @model_validator(mode="after")
    def _spread(self) -> OptionsParams:
        if self.spread_mode == "mark_fraction" and self.spread >= 1.0:
            raise ValueError("a mark_fraction spread must be < 1")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "options") -> OptionsParams:
        """Validate a mapping (e.g. a TOML table), naming the bad field on error.

        Raises
        ------
        ConfigError
            Unknown or invalid field; the message names it.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, f"[{where}] ")) from None


def pack_options_params(params: OptionsParams) -> np.ndarray:
    """Return the kernel record of ``params``, shape (1,), dtype ``OPTIONS_PARAMS_DTYPE``."""
    rec = np.zeros(1, OPTIONS_PARAMS_DTYPE)
    rec["trigger"] = int(TriggerPrice.EXTREME if params.trigger == "extreme"
                         else TriggerPrice.CLOSE)
    rec["spread_mode"] = int(SpreadMode.VOL_POINTS if params.spread_mode == "vol_points"
                             else SpreadMode.MARK_FRACTION)
    rec["spread"] = params.spread
    rec["penalty_rate"] = params.penalty_rate
    rec["keeper_share"] = params.keeper_share
    rec["rate"] = params.rate
    rec["contingency_rate"] = params.grid.contingency_rate
    rec["vol_floor"] = params.vol_floor
    rec["vol_shock_power"] = params.grid.vol_power
    rec["vol_shock_min_days"] = params.grid.vol_min_days
    rec["vol_shock_max_down"] = params.grid.vol_max_down
    return rec
