"""Run configs: which window, tape, book and policies a ``liqbt run`` simulates.

Example (``configs/may-2021-btc.toml``)::

    name = "may-2021-btc"
    event = "may-2021"                  # a key of data/events.toml (or give start and end)
    symbol = "BTC/USDT"                 # default: the event's first symbol
    book = "data/books/may-2021-btc.parquet"
    policies = ["hard", "partial", "close-factor"]   # names in strategies/ or paths

    [tape]                              # optional: narrow the tape choice, or give a path
    venue = "binance"
    market = "spot"
    interval = "1m"

    [execution]
    trigger_price = "extreme"           # extreme (low for longs, high for shorts) | close
    fill_price = "trigger"              # trigger | liquidation_price | close

    [insurance_fund]
    initial_balance_usd = 5_000_000

Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backtest.errors import ConfigError
from backtest.kernels.enums import FillPrice, TriggerPrice
from backtest.validation import describe, read_toml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TapeSelection(_Strict):
    """Which tape to simulate on: an explicit Parquet file, or filters on the tape store."""

    path: Path | None = None
    venue: str | None = None
    market: Literal["spot", "perp"] | None = None
    interval: str | None = None


class Execution(_Strict):
    """How candle prices trigger and fill liquidations (see :class:`TriggerPrice`, :class:`FillPrice`).

    Attributes
    ----------
    trigger_price : {"extreme", "close"}
        ``extreme``: an account is liquidatable in a step if it is under water at the candle's
        low (longs) or high (shorts); ``close``: at the candle's close.
    fill_price : {"trigger", "liquidation_price", "close"}
        ``trigger``: the liquidation executes at the trigger price (the candle's worst price
        with ``extreme``); ``liquidation_price``: at the account's exact liquidation price (the
        open if the candle gapped through it); ``close``: at the candle's close.
    """

    trigger_price: Literal["extreme", "close"] = "extreme"
    fill_price: Literal["trigger", "liquidation_price", "close"] = "trigger"

    @property
    def trigger_mode(self) -> int:
        """The :class:`TriggerPrice` value."""
        return int(TriggerPrice[self.trigger_price.upper()])

    @property
    def fill_mode(self) -> int:
        """The :class:`FillPrice` value."""
        return int(FillPrice[self.fill_price.upper()])


class InsuranceFundConfig(_Strict):
    """Insurance fund: starting balance in USD; inflows are the policies' penalty shares."""

    initial_balance_usd: float = Field(0.0, ge=0.0)


class RunConfig(_Strict):
    """A validated run config (see the module docstring for the file layout)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    event: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    symbol: str | None = None
    book: Path
    policies: list[str] = Field(min_length=1)
    tape: TapeSelection = TapeSelection()
    execution: Execution = Execution()
    insurance_fund: InsuranceFundConfig = InsuranceFundConfig()

    @model_validator(mode="after")
    def _window(self) -> RunConfig:
        if self.event is None and (self.start is None or self.end is None):
            raise ValueError("give either 'event' or both 'start' and 'end'")
        for t in (self.start, self.end):
            if t is not None and t.tzinfo is None:
                raise ValueError("start and end need a time zone, e.g. 2021-05-19T00:00:00Z")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        if len(set(self.policies)) != len(self.policies):
            raise ValueError("a policy is listed twice")
        return self


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run config.

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, or an invalid / unknown / misspelled field; the message
        names the file and the field.
    """
    raw = read_toml(path)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None
