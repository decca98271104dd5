"""Where a ``liqbt run`` spends its memory: peak resident memory per phase, bytes per account.

Runs one config end to end in this process (:func:`backtest.engine.run.execute`) while a thread
samples the resident set size every millisecond, and labels each sample with the phase the run
is in (reading the book, extracting its arrays, ordering, simulating, writing each result
table, the manifest; "other": between them, building the table parts included). Prints, per
phase, the peak RSS above the RSS before the run, in bytes per account; the interpreter, numba
and the libraries loaded before (about 300 MB) are not counted, unlike W10M's figure
(:mod:`bench.workloads`), which is the whole process's peak::

    .venv/bin/python -m bench.memory bench/out/w10m.toml     # the config W10M writes

A sampler can miss a peak shorter than a millisecond; the process's own high-water mark
(``VmHWM``, reset before the run) is printed too.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from bench.environment import peak_rss_since_reset_mb, reset_peak_rss, rss_mb

#: (module, function, phase label) wrapped to label the samples.
PHASES = (
    ("backtest.engine.run", "read_book", "read book"),
    ("backtest.engine.run", "moving_book", "book arrays and flow"),
    ("backtest.engine.run", "drop_book_columns", "drop book columns"),
    ("backtest.engine.run", "liquidation_order", "processing order"),
    ("backtest.engine.run", "simulate", "simulate"),
    ("backtest.results.writer", "prices_table", "prices table"),
    ("backtest.results.writer", "steps_table", "steps table"),
    ("backtest.results.writer", "adl_table", "adl table"),
    ("backtest.results.writer", "_manifest", "manifest"),
)


def profile(config: Path, runs: Path) -> tuple[dict[str, float], float, int]:
    """Run ``config``; return (peak MB above the start per phase, high-water MB, accounts)."""
    import importlib

    from backtest.engine import run as run_module
    from backtest.engine.warmup import warm_up
    from backtest.results import writer

    warm_up()  # compile (or load) the kernels before the baseline is taken
    phase = ["other"]
    peaks: dict[str, float] = {}

    def label(fn, name):
        def wrapped(*args, **kwargs):
            before = phase[0]
            phase[0] = name
            try:
                return fn(*args, **kwargs)
            finally:
                phase[0] = before
        return wrapped

    for module, attr, name in PHASES:
        mod = importlib.import_module(module)
        setattr(mod, attr, label(getattr(mod, attr), name))
    append = writer.RunFiles.append
    writer.RunFiles.append = lambda self, table, frame: label(append, f"{table} table")(
        self, table, frame)
    accounts = [0]
    simulate_policies = run_module.simulate_policies

    def counting(inputs, *args, **kwargs):
        accounts[0] = len(inputs.book)
        return simulate_policies(inputs, *args, **kwargs)

    run_module.simulate_policies = counting
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            now, name = rss_mb(), phase[0]
            peaks[name] = max(peaks.get(name, 0.0), now)
            time.sleep(0.001)

    base = rss_mb()
    reset_peak_rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        run_module.execute(config, runs=runs, show_progress=False)
    finally:
        stop.set()
        thread.join()
    return ({k: v - base for k, v in peaks.items()}, peak_rss_since_reset_mb() - base,
            accounts[0])


def main(argv: list[str] | None = None) -> int:
    """Profile one run config and print the peak per phase in bytes per account."""
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="run config (TOML)")
    p.add_argument("--runs", type=Path, default=Path("bench/out/runs"))
    args = p.parse_args(argv)
    peaks, hwm, n = profile(args.config, args.runs)
    per = 2**20 / max(n, 1)
    print(f"{n:,} accounts; peak above the start, bytes per account:")
    for name, mb in peaks.items():
        print(f"  {name:24s} {mb * per:7.1f}")
    print(f"  {'high-water mark':24s} {hwm * per:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
