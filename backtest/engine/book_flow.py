"""Inputs of the moving book: arrivals and voluntary closes during the window, and cures.

The mechanisms are documented in :mod:`backtest.kernels.book_flow_nb`. This module turns a
book (whose accounts with an ``entry_time`` inside the window are arrivals, and those with an
``exit_time`` inside it close then) and the run's ``[response]`` settings into the one
structure the step kernel reads (:class:`backtest.kernels.book_flow_nb.KernelFlow`, in the
kernel's processing order); the kernel applies it at the start of each step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from backtest.kernels.book_flow_nb import N_FLOW_FIELDS, KernelFlow, responder_mask


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
    perp_reference_rate : float or None
        Perp maintenance margin rate (fraction of notional) at which the perp levels are
        stated; None: the running policy's own rate. See :meth:`at_rate`.
    loan_top_up : bool
        Loans cure by adding collateral instead of repaying debt (default False).
    """

    share: float
    warning_health: tuple[float, float]
    target_health: tuple[float, float]
    delay_steps: int
    seed: int = 0
    max_cures: int = 0
    perp_reference_rate: float | None = None
    loan_top_up: bool = False

    def at_rate(self, perp_rate: float) -> Response:
        """Return the levels in the health of a policy whose perp maintenance rate is ``perp_rate``.

        Perp health is equity over ``rate x notional``, so a level ``h`` stated at the
        reference rate is the same equity (the same leverage) as ``h x reference / perp_rate``
        at the policy's rate: traders who keep their leverage under a bound keep it whatever
        maintenance rate the venue charges. Without a reference rate the levels are the
        policy's own (a response fitted under one policy then moves with the policy's rate).

        Parameters
        ----------
        perp_rate : float
            The running policy's perp maintenance margin rate, fraction of notional (> 0;
            otherwise the levels are returned unchanged).

        Returns
        -------
        Response
            A copy with the perp warning and target health scaled by ``reference /
            perp_rate`` (the loan levels unchanged), or ``self`` without a reference rate.
        """
        if self.perp_reference_rate is None or perp_rate <= 0.0:
            return self
        k = self.perp_reference_rate / perp_rate
        return replace(self, warning_health=(self.warning_health[0] * k, self.warning_health[1]),
                       target_health=(self.target_health[0] * k, self.target_health[1]))


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
    # a book with no arrivals starts with its own state: no copy (issue 17: memory per account)
    units0 = np.where(arriving, 0.0, units) if arriving.any() else units
    cash0 = np.where(arriving, 0.0, cash) if arriving.any() else cash
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
    """Return the book's ``exit_time`` column as epoch ms (-1: held), or None without the column.

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


def _by_step(step: np.ndarray, position: np.ndarray, n_steps: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(ptr (T + 1,), idx) of the accounts with ``step >= 0``, grouped by step, processing order.

    ``idx[ptr[t]:ptr[t + 1]]`` are the processing indices of the accounts whose step is ``t``,
    in the book's order within a step.
    """
    acting = np.flatnonzero(step >= 0)
    steps = step[acting]
    by_step = np.argsort(steps, kind="stable")
    ptr = np.searchsorted(steps[by_step], np.arange(n_steps + 1), side="left").astype(np.int64)
    return ptr, position[acting[by_step]].astype(np.int64)


def kernel_flow(flow: BookFlow, order: np.ndarray, n_steps: int) -> KernelFlow:
    """Return the step kernel's view of ``flow``, accounts in the kernel's processing order.

    Parameters
    ----------
    flow : BookFlow
        Arrivals, voluntary closes and responders, in the book's order, shape (N,) each.
    order : ndarray, shape (N,), int64
        Processing order (book index of each processing position).
    n_steps : int
        Steps of the window, T.

    Returns
    -------
    KernelFlow
        Fresh outputs (``steps`` zeros of shape (T, N_FLOW_FIELDS), ``deposited`` zeros,
        ``closed_step`` -1).
    """
    n = len(order)
    position = np.empty(n, np.int64)  # book index -> processing index
    position[order] = np.arange(n)
    arrival_ptr, arrival_idx = _by_step(flow.arrival_step, position, n_steps)
    close_ptr, close_idx = _by_step(flow.closing, position, n_steps)
    r = flow.response
    responders = (np.sort(position[flow.responds]).astype(np.int64) if r is not None
                  else np.zeros(0, np.int64))
    levels = ((r.warning_health, r.target_health) if r is not None
              else ((0.0, 0.0), (0.0, 0.0)))
    most_arrivals = int(np.diff(arrival_ptr).max()) if n_steps > 0 else 0
    most_closes = int(np.diff(close_ptr).max()) if n_steps > 0 else 0
    return KernelFlow(
        arrival_ptr=arrival_ptr,
        arrival_idx=arrival_idx,
        open_units=np.ascontiguousarray(flow.open_units[order], np.float64),
        open_cash=np.ascontiguousarray(flow.open_cash[order], np.float64),
        margin=np.ascontiguousarray(flow.margin[order], np.float64),
        responders=responders,
        warning_health=np.asarray(levels[0], np.float64),
        target_health=np.asarray(levels[1], np.float64),
        delay_steps=int(r.delay_steps) if r is not None else 0,
        max_cures=int(r.max_cures) if r is not None else 0,
        warn_since=np.full(n, -1, np.int32),
        cures=np.zeros(n, np.int32),
        deposited=np.zeros(n),
        loan_top_up=bool(r is not None and r.loan_top_up),
        topped_up=np.zeros(n if r is not None and r.loan_top_up else 0),
        steps=np.zeros((n_steps, N_FLOW_FIELDS)),
        applied=np.full(1, -1, np.int64),
        touched=np.empty(most_arrivals + most_closes + len(responders), np.int64),
        close_ptr=close_ptr,
        close_idx=close_idx,
        closed_step=np.full(n, -1, np.int32),
    )


def no_kernel_flow(n: int, n_steps: int) -> KernelFlow:
    """Return a :class:`KernelFlow` in which nothing moves (N accounts, T steps).

    Index arrays are empty, so the kernel's per-step call does nothing; ``deposited`` (N,) and
    ``steps`` (T, N_FLOW_FIELDS) are zeros and ``closed_step`` (N,) is -1, the results of a
    book that does not move.
    """
    empty_f, empty_i = np.zeros(0), np.zeros(0, np.int64)
    return KernelFlow(
        arrival_ptr=np.zeros(n_steps + 1, np.int64), arrival_idx=empty_i, open_units=empty_f,
        open_cash=empty_f, margin=empty_f, responders=empty_i, warning_health=np.zeros(2),
        target_health=np.zeros(2), delay_steps=0, max_cures=0,
        warn_since=np.zeros(0, np.int32), cures=np.zeros(0, np.int32), deposited=np.zeros(n),
        loan_top_up=False, topped_up=empty_f, steps=np.zeros((n_steps, N_FLOW_FIELDS)),
        applied=np.full(1, -1, np.int64),
        touched=empty_i, close_ptr=np.zeros(n_steps + 1, np.int64), close_idx=empty_i,
        closed_step=np.full(n, -1, np.int32),
    )
