"""European options on BTC and ETH: Black-76 marks, implied-volatility tapes, scenario margin.

Typical use::

    from backtest.options import (OptionsMarket, OptionsParams, generate_options_book,
                                  implied_vol_tape, simulate_options)

    book = generate_options_book(100_000, start, {"BTC": 20_500.0}, {"BTC": 0.57}, seed=7,
                                 params=OptionsBookParams(underlying_weights={"BTC": 1.0}))
    market = OptionsMarket.single(ts, 300, "BTC", low, high, close, iv_tape.iv)
    result = simulate_options(market, book, OptionsParams())
    result.steps_frame()        # per-step liquidations, bad debt, book Greeks and margin

See ``docs/options.md`` for the pricing, the volatility source, the margin grid and the
liquidation rule.
"""

from backtest.options.black76 import Greeks, black76_greeks, black76_price
from backtest.options.book import (
    COLUMNS,
    OptionsBook,
    OptionsBookArrays,
    read_options_book,
    validate_options_book,
    write_options_book,
)
from backtest.options.generate import (
    STRATEGIES,
    OptionsBookParams,
    generate_options_book,
    listed_expiries,
)
from backtest.options.implied_vol import (
    ImpliedVolTape,
    dvol_on_clock,
    implied_vol_tape,
    read_dvol_json,
    realized_on_clock,
)
from backtest.options.margin import AccountRisk, account_risk
from backtest.options.params import OptionsParams, ScenarioGrid, pack_options_params
from backtest.options.simulate import OptionsMarket, OptionsResult, simulate_options

__all__ = [
    "COLUMNS",
    "STRATEGIES",
    "AccountRisk",
    "Greeks",
    "ImpliedVolTape",
    "OptionsBook",
    "OptionsBookArrays",
    "OptionsBookParams",
    "OptionsMarket",
    "OptionsParams",
    "OptionsResult",
    "ScenarioGrid",
    "account_risk",
    "black76_greeks",
    "black76_price",
    "dvol_on_clock",
    "generate_options_book",
    "implied_vol_tape",
    "listed_expiries",
    "pack_options_params",
    "read_dvol_json",
    "read_options_book",
    "realized_on_clock",
    "simulate_options",
    "validate_options_book",
    "write_options_book",
]
