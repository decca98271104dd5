"""Liquidation-at-risk: what a grid of instantaneous shocks would liquidate, and the bad debt.

From a book's state at one step (``docs/liquidation-at-risk.md``):

- :func:`liquidation_map` for perp and loan accounts (``equity = cash + units x price``,
  liquidatable when ``equity < m x |units| x price``): for each relative price shock ``s``,
  the accounts liquidatable at ``price x (1 + s)``, the notional a hard liquidation there
  would close and the bad debt it would leave (kernel :func:`backtest.kernels.lar_nb.perp_lar_nb`,
  ``O(N log G)``);
- :func:`options_liquidation_map` for options accounts, over price shocks x implied-volatility
  shocks (vol points), with the options engine's scenario margin and close-out at mark plus
  spread.

A run takes snapshots every N steps (:class:`LarRecorder` with
:func:`backtest.options.simulate.simulate_options`, or by calling :func:`liquidation_map`
between kernel blocks) and :func:`liquidation_map_frame` stacks them into one polars DataFrame
with columns ``step, time, shock, [vol_shock,] liquidated_notional_usd, bad_debt_usd,
n_liquidated``, which :func:`backtest.report.risk_figures.liquidation_map_figure` draws as a
heat map.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from backtest.kernels.enums import N_PRODUCTS, Product
from backtest.kernels.lar_nb import options_lar_nb, perp_lar_nb
from backtest.options.book import OptionsBookArrays
from backtest.options.margin import instrument_arrays
from backtest.options.params import OptionsParams

LAR_CHUNK_SIZE = 65_536


def default_shocks(n: int = 41, largest: float = 0.20) -> np.ndarray:
    """Return ``n`` evenly spaced relative price shocks over ``[-largest, largest]``.

    Returns
    -------
    ndarray, shape (n,), float64
        Default: -20%, -19%, ..., +20%.
    """
    return np.linspace(-largest, largest, n)


@dataclass(frozen=True)
class LiquidationMap:
    """Liquidation-at-risk of a book at one moment.

    Attributes
    ----------
    price : ndarray, shape (U,), float64
        Underlying price(s) the shocks apply to, USD.
    shocks : ndarray, shape (G,), float64
        Relative price shocks, increasing.
    vol_shocks : ndarray, shape (V,), float64
        Implied-volatility shocks, vol as a fraction (0.1 = +10 vol points); ``[0]`` for perps.
    liquidated_notional_usd, bad_debt_usd, n_liquidated : ndarray, shape (G, V), float64
        At each (price shock, vol shock): the notional liquidated (perps: ``|units| x shocked
        price``, loans: the collateral seized; options: the underlying notional of the legs
        closed), the bad debt left, and the number of accounts liquidatable.
    """

    price: np.ndarray
    shocks: np.ndarray
    vol_shocks: np.ndarray
    liquidated_notional_usd: np.ndarray
    bad_debt_usd: np.ndarray
    n_liquidated: np.ndarray

    def frame(self, step: int = 0, time_ms: int | None = None) -> pl.DataFrame:
        """Return one row per (shock, vol shock) with the snapshot's step and time.

        Parameters
        ----------
        step : int
            Step index of the snapshot.
        time_ms : int, optional
            Its time, epoch ms (null if omitted).

        Returns
        -------
        polars.DataFrame
            ``step`` int64, ``time`` datetime[ms, UTC], ``shock`` float64 (fraction),
            ``vol_shock`` float64 (fraction), ``liquidated_notional_usd``, ``bad_debt_usd``
            float64, ``n_liquidated`` int64.
        """
        g, v = len(self.shocks), len(self.vol_shocks)
        return pl.DataFrame({
            "step": np.full(g * v, step, np.int64),
            "time": pl.Series([time_ms] * (g * v), dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "shock": np.repeat(self.shocks, v),
            "vol_shock": np.tile(self.vol_shocks, g),
            "liquidated_notional_usd": self.liquidated_notional_usd.reshape(-1),
            "bad_debt_usd": self.bad_debt_usd.reshape(-1),
            "n_liquidated": self.n_liquidated.reshape(-1).astype(np.int64),
        })


def _per_product(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(N_PRODUCTS, arr[0])
    if arr.size != N_PRODUCTS:
        raise ValueError(f"{name}: give one value or one per product ({N_PRODUCTS})")
    return arr


def _check_shocks(shocks) -> np.ndarray:
    s = np.asarray(shocks, dtype=np.float64).reshape(-1)
    if s.size == 0 or np.any(~np.isfinite(s)) or np.any(s <= -1.0) or np.any(np.diff(s) <= 0):
        raise ValueError("shocks must be a non-empty, strictly increasing array of finite "
                         "relative moves > -1")
    return s


def liquidation_map(
    units: np.ndarray,
    cash: np.ndarray,
    product: np.ndarray | None,
    maintenance_rate,
    price: float,
    shocks=None,
    *,
    penalty_rate=0.0,
    keeper_share: float = 0.0,
    chunk_size: int = LAR_CHUNK_SIZE,
) -> LiquidationMap:
    """Liquidation-at-risk of perp and loan accounts over instantaneous price shocks.

    Parameters
    ----------
    units : ndarray, shape (N,), float64
        Position in asset units (> 0 long perp or loan collateral, < 0 short perp).
    cash : ndarray, shape (N,), float64
        Cash balance, USD.
    product : ndarray, shape (N,), int8, or None
        :class:`Product` of each account; ``None``: all perps.
    maintenance_rate : float or array_like, shape (N_PRODUCTS,)
        Maintenance rate per product, fraction of notional (perps: maintenance margin rate;
        loans: ``1 - liquidation threshold``), as in the policy's ``maintenance_rate``.
    price : float
        Current price, USD.
    shocks : array_like, shape (G,), optional
        Relative price shocks, strictly increasing, > -1; default :func:`default_shocks`.
    penalty_rate : float or array_like, shape (N_PRODUCTS,)
        Liquidation penalty per product, fraction of the liquidated notional (for bad debt).
    keeper_share : float
        Share of the penalty paid to the keeper whatever the equity (for bad debt).
    chunk_size : int
        Accounts per parallel chunk.

    Returns
    -------
    LiquidationMap
        Arrays of shape (G, 1). A hard close of every liquidatable account is assumed (a
        partial policy closes less notional; which accounts breach is the same).

    Raises
    ------
    ValueError
        Arrays of different lengths, a non-positive price, or invalid shocks.

    Examples
    --------
    >>> lar = liquidation_map(units, cash, None, 0.005, 36_000.0)   # doctest: +SKIP
    >>> lar.frame(step=120, time_ms=ts[120])                         # doctest: +SKIP
    """
    units = np.ascontiguousarray(units, dtype=np.float64)
    cash = np.ascontiguousarray(cash, dtype=np.float64)
    if units.shape != cash.shape:
        raise ValueError("units and cash differ in length")
    if product is None:
        product = np.full(units.size, int(Product.PERP), np.int8)
    product = np.ascontiguousarray(product, dtype=np.int8)
    if product.shape != units.shape:
        raise ValueError("product and units differ in length")
    if not (np.isfinite(price) and price > 0):
        raise ValueError(f"price must be a positive number, got {price}")
    shocks = _check_shocks(default_shocks() if shocks is None else shocks)
    prices = float(price) * (1.0 + shocks)
    notional, bad, count = perp_lar_nb(product, units, cash,
                                       _per_product(maintenance_rate, "maintenance_rate"),
                                       _per_product(penalty_rate, "penalty_rate"),
                                       float(keeper_share), prices, int(chunk_size))
    return LiquidationMap(np.array([float(price)]), shocks, np.zeros(1), notional[:, None],
                          bad[:, None], count[:, None])


def liquidation_map_for_policy(policy: np.ndarray, units, cash, product, price, shocks=None
                               ) -> LiquidationMap:
    """Call :func:`liquidation_map` with a packed policy's maintenance rate, penalty and split.

    Parameters
    ----------
    policy : ndarray, shape (1,), dtype ``POLICY_DTYPE``
        From :func:`backtest.policies.pack_policy`.
    units, cash, product, price, shocks
        As for :func:`liquidation_map`.
    """
    rec = policy[0]
    return liquidation_map(units, cash, product, rec["maintenance_rate"], price, shocks,
                           penalty_rate=rec["penalty_rate"], keeper_share=rec["keeper_share"])


def options_liquidation_map(
    book: OptionsBookArrays,
    price,
    iv,
    now_ms: int,
    shocks=None,
    vol_shocks=(0.0,),
    params: OptionsParams | None = None,
    *,
    chunk_size: int = 4096,
) -> LiquidationMap:
    """Liquidation-at-risk of options accounts over price x implied-volatility shocks.

    Every underlying moves by the same relative shock (perfect correlation) and every implied
    volatility by the same number of vol points (floored at the parameters' ``vol_floor``);
    accounts are valued, margined and closed out exactly as in the options engine.

    Parameters
    ----------
    book : OptionsBookArrays
        The book's current state.
    price, iv : array_like, shape (U,)
        Current price (USD) and implied volatility (fraction) of each underlying.
    now_ms : int
        Valuation time, epoch ms.
    shocks : array_like, shape (G,), optional
        Relative price shocks; default :func:`default_shocks`.
    vol_shocks : array_like, shape (V,)
        Additive implied-volatility shocks, fraction (0.2 = +20 vol points).
    params : OptionsParams, optional
        Margin grid, spread and penalty; default :class:`OptionsParams`.
    chunk_size : int

    Returns
    -------
    LiquidationMap
        Arrays of shape (G, V).

    Raises
    ------
    ValueError
        Wrong lengths, non-positive price or iv, invalid shocks.
    """
    params = params or OptionsParams()
    shocks = _check_shocks(default_shocks() if shocks is None else shocks)
    vols = np.asarray(vol_shocks, dtype=np.float64).reshape(-1)
    price = np.asarray(price, dtype=np.float64).reshape(-1)
    iv = np.asarray(iv, dtype=np.float64).reshape(-1)
    n_u = len(book.underlyings)
    if price.size != n_u or iv.size != n_u:
        raise ValueError(f"need one price and one iv per underlying {book.underlyings}")
    if np.any(~(price > 0)) or np.any(~(iv > 0)) or vols.size == 0 or np.any(~np.isfinite(vols)):
        raise ValueError("prices and implied volatilities must be positive, vol shocks finite")
    g, v = shocks.size, vols.size
    fpts = (price[:, None] * (1.0 + np.repeat(shocks, v))[None, :])
    sig = np.maximum(iv[:, None] + np.tile(vols, g)[None, :], params.vol_floor)
    arrays = instrument_arrays(book, fpts, sig, now_ms, params)
    notional, bad, count = options_lar_nb(
        book.leg_start, book.leg_inst, book.leg_qty, book.cash, book.inst_und, fpts,
        arrays["val"], arrays["scen"], arrays["buy"], arrays["sell"],
        params.grid.contingency_rate, params.penalty_rate, params.keeper_share, int(chunk_size))
    return LiquidationMap(price, shocks, vols, notional.reshape(g, v), bad.reshape(g, v),
                          count.reshape(g, v))


def liquidation_map_frame(snapshots: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack snapshot frames (:meth:`LiquidationMap.frame`) into one, ordered by step and shock.

    Returns
    -------
    polars.DataFrame
        Columns ``step, time, shock, vol_shock, liquidated_notional_usd, bad_debt_usd,
        n_liquidated``; empty (with those columns) if there are no snapshots.
    """
    if not snapshots:
        return LiquidationMap(np.zeros(1), np.zeros(1), np.zeros(1), *(np.zeros((1, 1)),) * 3
                              ).frame().clear()
    return pl.concat(snapshots).sort(["step", "shock", "vol_shock"])


@dataclass
class LarRecorder:
    """Collects options liquidation-at-risk snapshots during :func:`simulate_options`.

    Pass ``recorder`` as ``on_block`` (with ``every``): before each block it maps the book at
    the previous step's close price and implied volatility (the latest state known).

    Attributes
    ----------
    market : OptionsMarket
        The run's market.
    shocks, vol_shocks : ndarray
        Grids (see :func:`options_liquidation_map`).
    params : OptionsParams
    frames : list of polars.DataFrame
        One per snapshot.
    """

    market: object
    shocks: np.ndarray = field(default_factory=default_shocks)
    vol_shocks: np.ndarray = field(default_factory=lambda: np.zeros(1))
    params: OptionsParams = field(default_factory=OptionsParams)
    frames: list = field(default_factory=list)

    def __call__(self, t: int, state: OptionsBookArrays) -> None:
        """Take the snapshot before step ``t`` (skipped at ``t = 0``: nothing is known yet)."""
        if t == 0:
            return
        m = self.market
        lar = options_liquidation_map(state, m.close[t - 1], m.iv[t - 1],
                                      int(m.valuation_ms[t - 1]), self.shocks, self.vol_shocks,
                                      self.params)
        self.frames.append(lar.frame(t, int(m.timestamp_ms[t])))

    def frame(self) -> pl.DataFrame:
        """All snapshots as one DataFrame (:func:`liquidation_map_frame`)."""
        return liquidation_map_frame(self.frames)
