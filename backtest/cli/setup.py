"""``liqbt warm-up``: compile the simulation kernels now (``make setup`` runs it)."""

from __future__ import annotations

from typing import Annotated

import typer


def warm_up(
    path: Annotated[str | None, typer.Option(
        metavar="decoupled|time-major",
        help="Compile one kernel path only (default: both). The two share no kernel, so two "
             "processes can compile them at once.")] = None,
) -> None:
    """Compile the simulation kernels into numba's cache, so the first run does not wait.

    Takes 30 to 100 s once after an install or a kernel change, about a second when the cache
    is already warm. The cache lives in $LIQBT_JIT_CACHE (default .numba_cache beside the
    package).
    """
    from backtest._jit import CACHE_DIR
    from backtest.engine.warmup import WARM_UP_PATHS
    from backtest.engine.warmup import warm_up as run_warm_up

    if path is not None and path not in WARM_UP_PATHS:
        raise typer.BadParameter(f"{path!r} is not a kernel path; use one of {WARM_UP_PATHS}",
                                 param_hint="--path")

    def notify(_message: str) -> None:
        typer.echo("compiling the simulation kernels into numba's cache (once per install or "
                   "kernel change, 30-100 s)...", err=True)

    seconds = run_warm_up(notify, WARM_UP_PATHS if path is None else (path,))
    typer.echo(f"kernels ready in {seconds:.1f} s (cache {CACHE_DIR})")


def register(root: typer.Typer) -> None:
    """Attach ``warm-up`` to the root CLI."""
    root.command("warm-up")(warm_up)
