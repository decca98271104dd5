"""Named inputs and state of the step kernel (:func:`backtest.kernels.steps_nb.run_steps_nb`).

The kernel's arrays travel in a few named tuples, one per role, instead of dozens of
positional arguments; numba compiles each as one typed structure whose fields the kernel reads
by name. Arrays are C-contiguous and writable (a read-only array would compile a second
signature). Accounts are in the kernel's processing order
(:func:`backtest.engine.dispatch.liquidation_order`). ``T`` is the number of steps of the
window, ``N`` the number of accounts.

The market state (:class:`backtest.kernels.enums.MarketState`) and the moving book
(:class:`backtest.kernels.book_flow_nb.KernelFlow`) have their own documented structures.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TapeInputs(NamedTuple):
    """Per-step inputs of the window (read only).

    Attributes
    ----------
    open, high, low, close : ndarray, shape (T,), float64
        Historical candle prices, USD per unit.
    depth : ndarray, shape (T,), float64
        Flow that moves the price by 1% in each step, USD (NaN without an impact model).
    volume : ndarray, shape (T,), float64
        Traded volume of each step, asset units (caps liquidations under order slicing; inf
        without it).
    gas_usd : ndarray, shape (T,), float64
        Gas cost of one liquidation in each step, USD (used when keepers require profit).
    funding_rate : ndarray, shape (T,), float64
        Funding rate settled at the start of each step, fraction (NaN: none). Perp accounts
        pay ``units x open x rate`` (longs pay shorts when positive), at the simulated open.
    risk : ndarray, shape (T, N_RISK_INPUTS), float64
        Per-step risk inputs (:class:`backtest.kernels.enums.RiskInput`): perp maintenance
        margin scale (dynamic margin; 1 = the policy's rate) and the predictive overlay's
        log-price shift.
    mark : ndarray, shape (T, 3), float64
        Low, high and close of the mark price per step, USD (used by ``OracleModel.MARK``).
    impact_baseline : ndarray, shape (T,), float64
        Net liquidation flow per step already in the historical prices (the as-happened
        policy's, USD, > 0 buys); impact and cascade feedback use the step's net flow minus it
        (zeros: the whole flow).
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    depth: np.ndarray
    volume: np.ndarray
    gas_usd: np.ndarray
    funding_rate: np.ndarray
    risk: np.ndarray
    mark: np.ndarray
    impact_baseline: np.ndarray


class AccountState(NamedTuple):
    """State of every account that the kernel reads and updates in place.

    Attributes
    ----------
    product : ndarray, shape (N,), int8
        :class:`backtest.kernels.enums.Product` of each account.
    units : ndarray, shape (N,), float64
        Position, asset units (> 0 long or loan collateral, < 0 short); updated.
    cash : ndarray, shape (N,), float64
        Cash, USD (negative: debt); updated.
    key : ndarray, shape (N,), float64
        Trigger key (:func:`backtest.kernels.liquidation_nb.trigger_key_nb`: liquidation
        price signed by side, at the policy's base rates); updated.
    flagged : ndarray, shape (N,), int32
        First step at which an account was seen liquidatable but not liquidated (keeper
        latency or unprofitable), -1 if none; updated.
    auction_tic : ndarray, shape (N,), int32
        Step a loan's Dutch auction (re)started, -1: none; updated.
    auction_top : ndarray, shape (N,), float64
        Starting price of that auction, USD per unit; updated.
    bands : ndarray, shape (N, N_BAND_FIELDS) or (0, N_BAND_FIELDS), float64
        Band state of each loan (family SOFT_BANDS, from
        :func:`backtest.kernels.bands_nb.place_bands_nb`; ``BAND_FIELDS``); updated.
    """

    product: np.ndarray
    units: np.ndarray
    cash: np.ndarray
    key: np.ndarray
    flagged: np.ndarray
    auction_tic: np.ndarray
    auction_top: np.ndarray
    bands: np.ndarray


class AccountTotals(NamedTuple):
    """Per-account outputs the kernel accumulates over the window (updated in place).

    Attributes
    ----------
    n_liquidations : ndarray, shape (N,), int32
        Liquidation events of each account.
    first_step, last_step : ndarray, shape (N,), int32
        First and last step the account was liquidated, -1: never (``last_step`` also times
        the policy's cooldown).
    liquidated_notional : ndarray, shape (N,), float64
        Notional closed at the fill price, USD.
    penalties_paid : ndarray, shape (N,), float64
        Keeper and insurance fees paid, USD.
    bad_debt : ndarray, shape (N,), float64
        Shortfall written off, USD.
    funding_paid : ndarray, shape (N,), float64
        Funding paid by each perp account (negative: received), USD.
    """

    n_liquidations: np.ndarray
    first_step: np.ndarray
    last_step: np.ndarray
    liquidated_notional: np.ndarray
    penalties_paid: np.ndarray
    bad_debt: np.ndarray
    funding_paid: np.ndarray


class RecordBuffers(NamedTuple):
    """The liquidation-record buffer the kernel appends to (one row per liquidation).

    Attributes
    ----------
    length : ndarray, shape (1,), int64
        Records held; updated. The dispatcher flushes the buffer and resets it to 0.
    ints : ndarray, shape (cap, len(REC_I_FIELDS)), int64
        Integer fields (:data:`backtest.kernels.liquidation_nb.REC_I_FIELDS`); rows
        ``[length, length + new)`` are written.
    floats : ndarray, shape (cap, len(REC_F_FIELDS)), float64
        Float fields (:data:`backtest.kernels.liquidation_nb.REC_F_FIELDS`).
    """

    length: np.ndarray
    ints: np.ndarray
    floats: np.ndarray
