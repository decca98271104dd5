"""Multi-asset and cross-margin portfolios: books, simulation and order-policy comparison.

Typical use::

    from backtest.tapes import TapeStore
    from backtest.tapes.align import align_tapes
    from backtest.portfolio import (PortfolioParams, compare_orders, generate_portfolio_book,
                                    simulate_portfolio)

    aligned = align_tapes(TapeStore(), "luna-2022", missing="hold")
    book = generate_portfolio_book(1_000_000, aligned, seed=7)
    result = simulate_portfolio(aligned, book, PortfolioParams(order="protocol"))
    table = compare_orders(aligned, book)          # policy x asset, polars

See ``docs/portfolios.md``.
"""

from backtest.portfolio.book import (
    PortfolioBookParams,
    generate_portfolio_book,
    read_portfolio_book,
    write_portfolio_book,
)
from backtest.portfolio.compare import compare_orders
from backtest.portfolio.model import (
    DEFAULT_ASSET_RISK,
    KIND_NAMES,
    ORDER_NAMES,
    AssetRisk,
    PortfolioBook,
    PortfolioParams,
)
from backtest.portfolio.simulate import PortfolioResult, insurance_waterfall, simulate_portfolio

__all__ = [
    "DEFAULT_ASSET_RISK",
    "KIND_NAMES",
    "ORDER_NAMES",
    "AssetRisk",
    "PortfolioBook",
    "PortfolioBookParams",
    "PortfolioParams",
    "PortfolioResult",
    "compare_orders",
    "generate_portfolio_book",
    "insurance_waterfall",
    "read_portfolio_book",
    "simulate_portfolio",
    "write_portfolio_book",
]
