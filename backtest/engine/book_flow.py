"""Inputs of the moving book: arrivals and voluntary closes during the window, and cures.

The mechanisms are documented in :mod:`backtest.kernels.book_flow_nb`. This module turns a
book (whose accounts with an ``entry_time`` inside the window are arrivals, and those with an
``exit_time`` inside it close then) and the run's
``[response]`` settings into the arrays the dispatcher steps through, and applies them at the
start of each step in the kernel's processing order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.kernels.book_flow_nb import (
    N_FLOW_FIELDS,
    close_positions_nb,
    open_arrivals_nb,
    respond_nb,
    responder_mask,
)

@dataclass(frozen=True)
class Response:
    """How accounts near their liquidation threshold cure (see :mod:`book_flow_nb`).

    Attributes
    ----------
    share : float
        Fraction of accounts that respond, [0, 1].
    warning_health : tuple of float
        Per product (perp, loan): health below which an account is in the warning zone (> 1).
    target_health : tuple of float
        Per product: health a responder restores (> warning_health).
    delay_steps : int
        Reaction delay, steps (>= 0).
    max_cures : int
        Cures an account can afford in the window (0: unlimited).
    seed : int
        Seed of the responder draw (:func:`responder_mask`).
    """

    share: float
    warning_health: tuple[float, float]
    target_health: tuple[float, float]
    delay_steps: int
    seed: int = 0
    max_cures: int = 0


@dataclass
class BookFlow:
    """Per-account arrays of the moving book, in the BOOK's order, shape (N,) each.

    Attributes
    ----------
    arrival_step : ndarray, int64
        Step at which the account opens; -1 for accounts open at the window start.
    open_units, open_cash, margin : ndarray, float64
        State an arriving account opens with (asset units, USD) and the margin it deposits
        (USD); ignored for accounts open at the start.
    responds : ndarray, bool
        Accounts that cure in the warning zone.
    response : Response or None
        Cure parameters; None switches responses off.
    close_step : ndarray, int64, or None
        Step at whose start the account's trader closes the position in full; -1 (or None for
        every account) for positions held through the window.
    """

    arrival_step: np.ndarray
    open_units: np.ndarray
    open_cash: np.ndarray
    margin: np.ndarray
    responds: np.ndarray
    response: Response | None
    close_step: np.ndarray | None = None

    @property
    def closing(self) -> np.ndarray:
        """Close step of every account, shape (N,), int64 (-1: held through the window)."""
        if self.close_step is None:
            return np.full(len(self.arrival_step), -1, np.int64)
        return self.close_step

    @property
    def active(self) -> bool:
        """Whether anything moves: an arrival, a close or a responder."""
        return bool((self.arrival_step >= 0).any() or (self.closing >= 0).any() or (
            self.response is not None and self.responds.any()))


def book_flow(account_id: np.ndarray, units: np.ndarray, cash: np.ndarray,
              equity_at_entry: np.ndarray, entry_ms: np.ndarray, window_ms: np.ndarray,
              response: Response | None, exit_ms: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, BookFlow]:
    """Split a book into the state at the window start and the flow during the window.

    Parameters
    ----------
    account_id : ndarray, shape (N,), int64
    units, cash, equity_at_entry : ndarray, shape (N,), float64
        Each account's state once open (asset units, USD) and its margin at entry (USD).
    entry_ms : ndarray, shape (N,), int64
        Entry times, epoch ms; at or after ``window_ms[0]`` means the account arrives in the
        window, at the first step whose candle opens at or after its entry time.
    window_ms : ndarray, shape (T,), int64
        Candle open times of the window.
    response : Response or None
        Cure parameters (None: no responses).
    exit_ms : ndarray, shape (N,), int64, optional
        Times the traders close their positions, epoch ms; an account closes at the first step
        whose candle opens at or after it. Negative (or the argument omitted): held through the
        window. Only accounts open at the window start may close.

    Returns
    -------
    units0, cash0 : ndarray, shape (N,), float64
        State at the window start (0 for arrivals).
    BookFlow

    Raises
    ------
    ValueError
        An account's entry or exit is after the window's last candle, an exit is before the
        window start, or an account arriving in the window has an exit.
    """
    arriving = entry_ms >= window_ms[0]
    step = np.where(arriving, np.searchsorted(window_ms, entry_ms, side="left"), -1)
    if (step >= len(window_ms)).any():
        late = int(account_id[np.argmax(step >= len(window_ms))])
        raise ValueError(f"account {late} opens after the window's last candle")
    units0 = np.where(arriving, 0.0, units)
    cash0 = np.where(arriving, 0.0, cash)
    responds = (responder_mask(account_id, response.share, response.seed)
                if response is not None else np.zeros(len(units), bool))
    close_step = None
    if exit_ms is not None:
        closing = exit_ms >= 0
        close_step = np.where(closing, np.searchsorted(window_ms, exit_ms, side="left"), -1)
        bad = closing & ((exit_ms < window_ms[0]) | (close_step >= len(window_ms)) | arriving)
        if bad.any():
            k = int(np.argmax(bad))
            why = ("opens in the window and cannot close in it" if arriving[k] else
                   "closes outside the window")
            raise ValueError(f"account {int(account_id[k])} {why}")
        close_step = close_step.astype(np.int64)
    flow = BookFlow(step.astype(np.int64), np.asarray(units, float), np.asarray(cash, float),
                    np.where(arriving, equity_at_entry, 0.0), responds, response, close_step)
    return units0, cash0, flow


def exit_times_ms(frame) -> np.ndarray | None:
    """The book's ``exit_time`` column as epoch ms (-1: held), or None without the column.

    Parameters
    ----------
    frame : polars.DataFrame
        A validated book (:mod:`backtest.books.schema`).

    Returns
    -------
    ndarray, shape (N,), int64, or None
    """
    if "exit_time" not in frame.columns:
        return None
    return frame["exit_time"].dt.epoch("ms").fill_null(-1).to_numpy().astype(np.int64)


class FlowStepper:
    """Applies a :class:`BookFlow` step by step to the kernel's state (processing order)."""

    def __init__(self, flow: BookFlow, order: np.ndarray, n_steps: int):
        n = len(order)
        position = np.empty(n, np.int64)  # book index -> processing index
        position[order] = np.arange(n)
        arriving = np.flatnonzero(flow.arrival_step >= 0)
        steps = flow.arrival_step[arriving]
        by_step = np.argsort(steps, kind="stable")
        self.arrival_idx = position[arriving[by_step]]
        self.arrival_ptr = np.searchsorted(steps[by_step], np.arange(n_steps + 1),
                                           side="left").astype(np.int64)
        closing = np.flatnonzero(flow.closing >= 0)
        close_steps = flow.closing[closing]
        by_close = np.argsort(close_steps, kind="stable")
        self.close_idx = position[closing[by_close]].astype(np.int64)
        self.close_ptr = np.searchsorted(close_steps[by_close], np.arange(n_steps + 1),
                                         side="left").astype(np.int64)
        self.closed_step = np.full(n, -1, np.int32)  # processing order
        self.open_units = np.ascontiguousarray(flow.open_units[order])
        self.open_cash = np.ascontiguousarray(flow.open_cash[order])
        self.margin = np.ascontiguousarray(flow.margin[order])
        self.response = flow.response
        self.responders = (np.sort(position[flow.responds]).astype(np.int64)
                           if flow.response is not None else np.zeros(0, np.int64))
        if flow.response is not None:
            self.warning_health = np.asarray(flow.response.warning_health, np.float64)
            self.target_health = np.asarray(flow.response.target_health, np.float64)
        self.warn_since = np.full(n, -1, np.int32)
        self.cures = np.zeros(n, np.int32)
        self.deposited = np.zeros(n)
        self.steps = np.zeros((n_steps, N_FLOW_FIELDS))

    def apply(self, t: int, observed_price: float, product, units, cash, key, m_rate) -> None:
        """Open step ``t``'s arrivals, close its voluntary closes at ``observed_price``, then let
        responders cure at ``observed_price`` (t > 0)."""
        out = self.steps[t]
        open_arrivals_nb(t, self.arrival_ptr, self.arrival_idx, self.open_units, self.open_cash,
                         self.margin, product, units, cash, key, m_rate, self.deposited, out)
        close_positions_nb(t, observed_price, self.close_ptr, self.close_idx, product, units,
                           cash, key, m_rate, self.closed_step, out)
        r = self.response
        if r is not None and t > 0 and len(self.responders):
            respond_nb(t, observed_price, self.responders, product, units, cash, key, m_rate,
                       self.warn_since, self.warning_health, self.target_health,
                       r.delay_steps, r.max_cures, self.cures, self.deposited, out)
