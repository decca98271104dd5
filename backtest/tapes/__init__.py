"""Historical price tapes: importers, the tape schema and the tape store.

A tape is one Parquet file per (venue, market, symbol, interval) of UTC candles with funding
rates and realised volatility (see ``docs/tapes.md``). Typical use::

    from backtest.tapes import TapeStore

    store = TapeStore()                                   # $LIQBT_TAPES or data/tapes
    store.import_file("BTC_USDT-1m.json", venue="binance")
    tape = store.resolve("BTC", "2021-05-19", "2021-05-20").window("2021-05-19", "2021-05-20")
    arrays = tape.arrays()                                # contiguous numpy arrays
"""

from backtest.tapes.binance import BinanceName, parse_binance_name, read_binance
from backtest.tapes.freqtrade import FreqtradeName, parse_freqtrade_name, read_freqtrade
from backtest.tapes.plain import read_plain
from backtest.tapes.schema import (
    KNOWN_QUOTES,
    KNOWN_VENUES,
    MARKETS,
    SCHEMA_VERSION,
    TAPE_COLUMNS,
    Gap,
    RawFunding,
    RawTape,
    Source,
    TapeMeta,
    TapeWarning,
    check_warnings,
    find_gaps,
    format_interval,
    parse_interval,
    parse_symbol,
    validate_frame,
)
from backtest.tapes.store import (
    Coverage,
    FundingInfo,
    FundingMeta,
    ImportResult,
    Tape,
    TapeInfo,
    TapeStore,
    attach_funding,
    is_importable,
    read_any,
    read_funding,
)
from backtest.tapes.volatility import default_window, realized_vol, with_realized_vol

__all__ = [
    "KNOWN_QUOTES",
    "KNOWN_VENUES",
    "MARKETS",
    "SCHEMA_VERSION",
    "TAPE_COLUMNS",
    "BinanceName",
    "Coverage",
    "FreqtradeName",
    "FundingInfo",
    "FundingMeta",
    "Gap",
    "ImportResult",
    "RawFunding",
    "RawTape",
    "Source",
    "Tape",
    "TapeInfo",
    "TapeMeta",
    "TapeStore",
    "TapeWarning",
    "attach_funding",
    "check_warnings",
    "default_window",
    "find_gaps",
    "format_interval",
    "is_importable",
    "parse_binance_name",
    "parse_freqtrade_name",
    "parse_interval",
    "parse_symbol",
    "read_any",
    "read_binance",
    "read_freqtrade",
    "read_funding",
    "read_plain",
    "realized_vol",
    "validate_frame",
    "with_realized_vol",
]
