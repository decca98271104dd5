"""The record of a portfolio run: its manifest and the catalog's tables written at the end.

Split from :mod:`backtest.portfolio.pipeline` (which runs the stages) so that each stays
small; the manifest's standard fields are those every run kind writes, so the catalog
(:mod:`backtest.results.catalog`) and ``liqbt list runs`` read a portfolio run like any other.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from backtest.portfolio.model import PortfolioBook
from backtest.portfolio.run_config import PortfolioRunConfig
from backtest.portfolio.simulate import PortfolioResult
from backtest.portfolio.tables import portfolio_policies, portfolio_prices, portfolio_steps
from backtest.provenance import engine_version, file_sha256, package_versions, runtime
from backtest.results.metrics import PORTFOLIO
from backtest.results.writer import RunFiles
from backtest.tapes.align import AlignedTapes


def write_catalog_tables(out: RunFiles, run_id: str, aligned: AlignedTapes,
                         results: dict[str, PortfolioResult],
                         config_sha256: str | None) -> None:
    """Write the catalog's ``steps``, ``policies`` and ``prices`` tables of a portfolio run.

    (``accounts`` and ``liquidations`` are appended per order while its records exist, see
    :func:`backtest.portfolio.pipeline.run_portfolio_config`.)

    Parameters
    ----------
    out : RunFiles
        The run directory being written.
    run_id : str
    aligned : AlignedTapes
    results : dict of str to PortfolioResult
        One per collateral order, in the config's order.
    config_sha256 : str or None
        Recorded as the orders' ``file_sha256``.
    """
    out.table("steps", pl.concat([portfolio_steps(run_id, o, r) for o, r in results.items()]))
    out.table("policies", portfolio_policies(run_id, {o: r.params for o, r in results.items()},
                                             config_sha256))
    out.table("prices", portfolio_prices(run_id, aligned))


def _sha(path) -> str | None:
    return file_sha256(path) if path and Path(path).is_file() else None


def portfolio_manifest(cfg: PortfolioRunConfig, run_id: str, created: datetime, config_path,
                       overrides: list[str] | None, aligned: AlignedTapes, book: PortfolioBook,
                       book_info: dict, results: dict[str, PortfolioResult],
                       options_info: dict | None, timings: dict) -> dict:
    """Return a portfolio run's manifest: the standard fields of every run kind, then its own.

    Standard fields (as :mod:`backtest.results.writer` writes them for single-asset runs, read
    by the catalog and ``liqbt list runs``): ``run_id``, ``run_kind`` (``"portfolio"``),
    ``name``, ``created_at``, ``command``, ``symbol`` (the assets, comma-separated),
    ``window`` (with ``event`` and ``steps``), ``tape`` (``interval``, tape keys), ``book``
    (accounts, positions, file and sha256), ``policies`` (one per collateral order),
    ``versions``, ``runtime``, ``timings``. ``config`` stays the resolved config (the report
    reads it); its path, sha256 and overrides are ``config_path``, ``config_sha256`` and
    ``overrides``. Portfolio fields: ``portfolio_book``, ``portfolio_summary`` (per order,
    :meth:`PortfolioResult.summary`), ``options_book``.

    ``timings`` is kept by reference: times added to it later are in the manifest.
    """
    book_desc = {**book_info, "accounts": book.n_accounts, "positions": book.n_positions,
                 "symbols": list(book.symbols), "sha256": _sha(book_info.get("path")),
                 "kinds": {int(k): int(v) for k, v in
                           zip(*np.unique(book.kind, return_counts=True), strict=True)}}
    window = {"event": cfg.event, "start": aligned.start.isoformat(),
              "end": aligned.end.isoformat(), "interval": aligned.interval,
              "steps": aligned.n_steps, "held_steps": aligned.held_steps,
              "partial_steps": aligned.partial_steps, "sources": aligned.sources}
    command = ["liqbt portfolio run", str(config_path or "<config>"),
               *(f"--set '{o}'" for o in overrides or [])]
    return {
        "run_id": run_id, "run_kind": PORTFOLIO, "name": cfg.name,
        "description": cfg.description,
        "created_at": created.isoformat(), "created": created.isoformat(timespec="seconds"),
        "command": " ".join(command),
        "config_path": str(config_path) if config_path else None,
        "config_sha256": _sha(config_path), "overrides": list(overrides or []),
        "config": cfg.model_dump(mode="json"), "event": cfg.event,
        "symbol": ", ".join(aligned.symbols),
        "window": window,
        "tape": {"interval": aligned.interval, "sources": aligned.sources},
        "book": book_desc, "portfolio_book": book_desc,
        "policies": [{"name": o, "parameters": r.params.model_dump(mode="json"),
                      "file_sha256": None} for o, r in results.items()],
        "portfolio_summary": {o: r.summary() for o, r in results.items()},
        "options_book": options_info["book"] if options_info else None,
        "timings": timings,
        "runtime": runtime(), "versions": package_versions(),
        "code": engine_version(),
    }


__all__ = ["portfolio_manifest", "write_catalog_tables"]
