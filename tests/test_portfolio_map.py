"""Liquidation-at-risk of a multi-asset book (backtest.portfolio.lar_map)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from backtest.kernels.portfolio_enums import PortfolioMetric
from backtest.kernels.portfolio_reference import simulate_portfolio_reference
from backtest.portfolio import PortfolioParams, generate_portfolio_book, simulate_portfolio
from backtest.portfolio.lar_map import PortfolioLarRecorder, portfolio_liquidation_map
from backtest.portfolio.simulate import sensitivity_of
from backtest.tapes.align import AlignedTapes

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def _aligned(steps: int = 30, seed: int = 3) -> AlignedTapes:
    rng = np.random.default_rng(seed)
    p0 = np.array([40_000.0, 3_000.0, 150.0])
    drift = np.log(np.array([0.8, 0.7, 0.6])) / steps
    close = p0 * np.exp(np.cumsum(drift + rng.normal(0, 0.01, (steps, 3)), axis=0))
    opens = np.vstack([p0, close[:-1]])
    high = np.maximum(opens, close) * 1.003
    low = np.minimum(opens, close) * 0.997
    ts = 1_621_382_400_000 + np.arange(steps, dtype=np.int64) * 3_600_000
    vol = np.abs(rng.normal(0.8, 0.2, (steps, 3)))
    return AlignedTapes(SYMBOLS, 3600, ts, opens, high, low, close, np.ones((steps, 3)), vol,
                        datetime(2021, 5, 19, tzinfo=UTC), datetime(2021, 5, 20, tzinfo=UTC))


@pytest.mark.parametrize("order", ["protocol", "least_sensitive", "proportional"])
def test_map_equals_one_step_of_the_reference_twin(order):
    al = _aligned()
    book = generate_portfolio_book(300, al, seed=5)
    params = PortfolioParams(order=order)
    shocks = np.array([-0.5, -0.25, -0.1, 0.0, 0.1, 0.3])
    price, sens = al.close[5], al.realized_vol[6]
    lar = portfolio_liquidation_map(book, price, sens, shocks, params)
    assert lar.liquidated_notional_usd.shape == (6, 1)
    for g, s in enumerate(shocks):
        p = (price * (1 + s))[None, :]
        ref = simulate_portfolio_reference(p, p, p, sens[None, :], params.asset_risk(SYMBOLS),
                                           params.policy_record()[0], book.kind, book.offsets,
                                           book.pos_asset, book.pos_units, book.cash)
        M = PortfolioMetric
        np.testing.assert_allclose(lar.liquidated_notional_usd[g, 0],
                                   ref.step_metrics[0, M.LIQUIDATED_NOTIONAL], rtol=1e-9)
        np.testing.assert_allclose(lar.bad_debt_usd[g, 0], ref.step_metrics[0, M.BAD_DEBT],
                                   rtol=1e-9, atol=1e-9)
        assert lar.n_liquidated[g, 0] == ref.step_metrics[0, M.N_LIQUIDATIONS]
    # deeper falls liquidate more: the book is long collateral and mostly long perps
    assert lar.liquidated_notional_usd[0, 0] > lar.liquidated_notional_usd[3, 0]
    assert np.array_equal(book.pos_units, generate_portfolio_book(300, al, seed=5).pos_units)


def test_snapshots_do_not_change_the_run():
    al = _aligned()
    book = generate_portfolio_book(500, al, seed=9)
    params = PortfolioParams(order="least_sensitive")
    plain = simulate_portfolio(al, book, params)
    rec = PortfolioLarRecorder(al.close, al.timestamp, sensitivity_of(al),
                               np.array([-0.2, 0.0, 0.2]), params)
    hooked = simulate_portfolio(al, book, params, every=7, on_block=rec)
    assert np.array_equal(plain.book.cash, hooked.book.cash)
    assert np.array_equal(plain.book.pos_units, hooked.book.pos_units)
    assert np.array_equal(plain.step_metrics, hooked.step_metrics)
    frame = rec.frame()
    assert sorted(frame["step"].unique().to_list()) == [7, 14, 21, 28]
    assert frame.height == 4 * 3


def test_bad_inputs_are_named():
    al = _aligned()
    book = generate_portfolio_book(50, al, seed=1)
    with pytest.raises(ValueError, match="increasing"):
        portfolio_liquidation_map(book, al.close[0], al.realized_vol[0], [0.1, -0.1])
    with pytest.raises(ValueError, match="one positive price per asset"):
        portfolio_liquidation_map(book, al.close[0][:2], al.realized_vol[0], [0.0])
