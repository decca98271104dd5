"""Re-measure the cascade model on a small book: drift after liquidations stop, and size effects.

Runs a cascade config (default ``configs/may-2021-cascade-cascade.toml``) on books rescaled to a
fixed USD open interest, under the earlier model (depth 0.1 x the previous hour's volume, no
counterfactual) and the current one (pre-window depth, counterfactual against the config's
as-happened policy), and prints per policy: the price factor at given times, the lowest factor,
the extra drawdown (simulated low vs historical low), the largest departure from history and
the minutes more than 1% away. Nothing is written.

Usage (tapes imported into ``$LIQBT_TAPES``; books from ``liqbt book generate``)::

    python -m bench.cascade_check BOOK [BOOK ...] --oi-usd 2e9 --at 14:00 --at 22:32
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from backtest.books import read_book, write_book
from backtest.books.schema import Book
from backtest.engine.run import resolve_inputs, simulate_policies
from backtest.kernels.enums import StepMetric

MODELS = {
    "earlier": ["market.depth_source=\"hourly_volume\"", "market.counterfactual=false"],
    "current": [],
}


def scaled_book(path: Path, oi_usd: float, first_open: float, out: Path) -> tuple[Path, float]:
    """Write ``path``'s book rescaled to ``oi_usd`` of notional at ``first_open``.

    Every position's size (asset units) is multiplied by one scale, so leverage and liquidation
    prices do not change. Returns the new file and the scale.
    """
    book = read_book(path)
    notional = float((book.frame["size"] * first_open).sum())
    scale = oi_usd / notional
    frame = book.frame.with_columns(book.frame["size"] * scale)
    return write_book(Book(frame, book.meta, out), out), scale


def main(argv: list[str] | None = None) -> None:
    """Run the check (command-line arguments as in the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("books", nargs="+", type=Path)
    ap.add_argument("--config", type=Path, default=Path("configs/may-2021-cascade-cascade.toml"))
    ap.add_argument("--oi-usd", type=float, default=None,
                    help="rescale every book to this notional at the first open (USD)")
    ap.add_argument("--at", action="append", default=[], help="UTC times HH:MM to report")
    ap.add_argument("--policies", default=None, help="comma-separated subset of policies")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="cascade-check-"))
    for book_path in args.books:
        for model, overrides in MODELS.items():
            sets = [f'book="{book_path}"', *overrides]
            if args.policies:
                names = ", ".join(f'"{p}"' for p in args.policies.split(","))
                sets.append(f"policies=[{names}]")
            inputs = resolve_inputs(args.config, overrides=sets)
            w = inputs.window.arrays()
            label = f"{book_path.name} ({len(inputs.book):,} accounts)"
            if args.oi_usd:
                out, scale = scaled_book(book_path, args.oi_usd, float(w["open"][0]),
                                         tmp / book_path.name)
                inputs = resolve_inputs(args.config, overrides=[f'book="{out}"', *sets[1:]])
                label += f", sizes x {scale:.3g} to ${args.oi_usd:,.0f} notional"
            outcomes, _ = simulate_policies(inputs, show_progress=False)
            ts = w["timestamp"]
            rows = []
            for at in args.at:
                hh, mm = (int(x) for x in at.split(":"))
                day = datetime.fromtimestamp(ts[0] / 1000, UTC).replace(hour=hh, minute=mm)
                rows.append((at, int(np.searchsorted(ts, day.timestamp() * 1000))))
            depth = inputs.market.depth
            print(f"\n== {label}, {model} model: depth ${depth.min():,.0f}..${depth.max():,.0f}")
            for o in outcomes:
                sm = o.result.step_metrics
                f = sm[:, StepMetric.PRICE_FACTOR]
                liq = np.nonzero(sm[:, StepMetric.N_LIQUIDATIONS])[0]
                last = int(liq.max()) if len(liq) else -1
                extra = 1 - (w["low"] * f).min() / w["low"].min()
                minutes = (np.abs(f - 1) > 0.01).sum() * inputs.tape.interval_seconds / 60
                at = "  ".join(f"f({t})={f[min(i, len(f) - 1)]:.4f}" for t, i in rows)
                liquidated = sm[:, StepMetric.LIQUIDATED_NOTIONAL].sum()
                print(f"{o.name:>18}: liquidated ${liquidated:,.0f}"
                      f"  last liquidation step {last}  {at}  f(end)={f[-1]:.4f}"
                      f"  min f={f.min():.4f}  extra drawdown {100 * extra:.2f}%"
                      f"  minutes |dep|>1% {minutes:.0f}")


if __name__ == "__main__":
    main()
