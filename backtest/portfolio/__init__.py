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

On a one-asset book the portfolio kernel settles as the single-asset kernel
(:mod:`backtest.kernels.liquidation_nb`) does, with the same settlement functions
(:mod:`backtest.kernels.settlement_nb`): same trigger (``<``, at each position's adverse
candle extreme or the close), fill at the trigger price, the keeper always paid, the insurance
fund paid out of the equity left, bad debt once nothing is left open, fees into the fund before
it covers the step's bad debt, step by step inside the kernel
(``tests/test_portfolio_equivalence.py``, ``tests/test_settlement.py``). Two modelling
differences are intended:

- Lending follows Aave's ``LiquidationLogic``: ``close_factor`` of the *debt* (all of it at
  ``HF <= full_close_health_factor``), capped at the collateral held. The single-asset kernel
  applies its close factor to the collateral needed to repay the whole debt, capped at the
  collateral held, and liquidates a loan whole when ``equity <= 0`` or when its equity cannot
  pay the penalty of the close-factor slice. The two agree unless ``full_close_health_factor
  < HF < LT x (1 + bonus)`` (never with Aave's 0.95 and WETH's ``0.83 x 1.05``).
- Perps have no close factor here (the single-asset close factor also caps perps): a
  liquidation restores ``target_health`` or closes the position.

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
from backtest.portfolio.simulate import PortfolioResult, simulate_portfolio

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
    "read_portfolio_book",
    "simulate_portfolio",
    "write_portfolio_book",
]
