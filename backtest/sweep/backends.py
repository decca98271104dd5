"""Where cells run: local worker processes (default) or a Dask distributed cluster.

Both backends run :func:`backtest.sweep.runner.run_cell` on each pending cell and yield its
result as it finishes; the cell writes its own output into the sweep directory, so the
backends move only small dicts. Dask is an optional extra (``pip install 'liqbt[dask]'``): its
workers must import this package and see the same paths (tape store, strategies, sweep
directory) as the client, e.g. on a shared filesystem.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from backtest.errors import LiqbtError
from backtest.sweep.plan import CellSpec
from backtest.sweep.runner import run_cell, warm_worker


def run_local(cells: list[CellSpec], sweep_dir: str, workers: int) -> Iterator[dict]:
    """Run cells in ``workers`` local processes (in this process when ``workers`` is 1).

    Worker processes are started with ``spawn`` (numba's threading layer does not survive
    ``fork``) and load the compiled kernels once, in their initializer. At most
    ``2 x workers`` cells are in flight, so an interrupted sweep has queued little work.

    Parameters
    ----------
    cells : list of CellSpec
        Pending cells, in order.
    sweep_dir : str
    workers : int
        Number of processes, >= 1.

    Yields
    ------
    dict
        :func:`run_cell` results, in completion order.

    Raises
    ------
    LiqbtError
        The first error of a cell (pending cells are cancelled).
    """
    if workers <= 1:
        for cell in cells:
            yield run_cell(cell, sweep_dir)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=warm_worker) as pool:
        todo = iter(cells)
        running: dict[Future, CellSpec] = {}
        try:
            while True:
                while len(running) < 2 * workers:
                    cell = next(todo, None)
                    if cell is None:
                        break
                    running[pool.submit(run_cell, cell, sweep_dir)] = cell
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    cell = running.pop(fut)
                    yield _result(fut, cell)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _result(fut, cell: CellSpec) -> dict:
    try:
        return fut.result()
    except LiqbtError:
        raise
    except Exception as exc:  # an engine failure: name the cell
        raise LiqbtError(f"cell {cell.cell_id} (event {cell.event}, policy "
                         f"{cell.policy['name']}, {cell.param_set}, seed {cell.seed}, "
                         f"{cell.stress_label}) failed: {type(exc).__name__}: {exc}") from exc


CONNECT_TIMEOUT = "20s"
"""How long to try to reach a Dask scheduler before giving up."""


def run_dask(cells: list[CellSpec], sweep_dir: str, scheduler) -> Iterator[dict]:
    """Run cells on a Dask distributed cluster.

    Parameters
    ----------
    cells : list of CellSpec
    sweep_dir : str
        Must be the same path on the workers.
    scheduler : str or distributed.Client
        Scheduler address (``tcp://host:8786``) or a connected client.

    Yields
    ------
    dict
        :func:`run_cell` results, in completion order.

    Raises
    ------
    LiqbtError
        If ``distributed`` is not installed, the scheduler cannot be reached, or a cell fails.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise LiqbtError("a Dask scheduler needs the optional dependency: "
                         "pip install 'liqbt[dask]'") from None
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT) if own else scheduler
    except OSError as exc:
        raise LiqbtError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    try:
        futures = client.map(run_cell, cells, sweep_dir=sweep_dir,
                             key=[f"liqbt-cell-{c.cell_id}" for c in cells], pure=False)
        by_key = {f.key: c for f, c in zip(futures, cells, strict=True)}
        try:
            for fut in as_completed(futures):
                yield _result(fut, by_key[fut.key])
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own:
            client.close()
