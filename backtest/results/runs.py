"""Finished runs as their directories describe them, without opening the DuckDB catalog.

Single-asset runs live in ``<runs>/<run_id>/``, portfolio runs in
``<runs>/portfolio/<run_id>/`` and options runs in ``<runs>/options/<run_id>/``
(:data:`RUN_KIND_DIRS`); each holds a ``manifest.json`` written
last (the directory is renamed into place when complete, see
:func:`backtest.results.writer.run_directory`) whose ``run_kind`` names its kind. Hidden
directories are temporary folders of runs still being written (or killed) and are never read
as runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from backtest.errors import CatalogError
from backtest.results.metrics import OPTIONS, PORTFOLIO, SINGLE_ASSET

RUN_KIND_DIRS = {SINGLE_ASSET: "", PORTFOLIO: "portfolio", OPTIONS: "options"}
"""Folder of the runs directory holding each run kind's run directories."""


def list_runs(root: Path) -> list[dict]:
    """Describe every finished run under ``root`` from its ``manifest.json``, oldest first.

    Parameters
    ----------
    root : Path
        Runs directory.

    Returns
    -------
    list of dict
        Keys ``run_id``, ``kind`` (``single_asset``, ``portfolio`` or ``options``), ``created``
        (``YYYY-MM-DD HH:MM:SS``, UTC), ``event``, ``symbol``, ``window`` (``start .. end``),
        ``accounts``
        (int or None), ``policies`` (list of str; portfolio runs: the collateral orders),
        ``wall_seconds`` (float or None) and ``run_dir`` (str). A manifest that cannot be read
        as JSON is listed with ``kind`` ``unreadable``.
    """
    found = [(p, kind) for kind, sub in RUN_KIND_DIRS.items()
             for p in sorted((root / sub).glob("*/manifest.json"))]
    out = []
    for path, kind in found:
        if path.parent.name.startswith("."):
            continue
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            out.append({"run_id": path.parent.name, "kind": "unreadable", "created": "",
                        "event": "-", "symbol": "-", "window": "-", "accounts": None,
                        "policies": [], "wall_seconds": None, "run_dir": str(path.parent),
                        "created_at": ""})
            continue
        window = m.get("window") or {}
        timings = m.get("timings") or {}
        kind = m.get("run_kind", kind)
        if "book" in m:  # the standard manifest (every kind since run_kind was added)
            accounts = (m.get("book") or {}).get("accounts")
            names = [p.get("name", "?") for p in m.get("policies") or []]
            symbol = m.get("symbol") or "-"
            wall = timings.get("total_seconds", timings.get("total_s"))
        else:  # a portfolio run written before the standard manifest
            book = m.get("portfolio_book") or {}
            accounts = book.get("accounts")
            names = list((m.get("portfolio_summary") or {}).keys())
            symbol = ", ".join(book.get("symbols") or []) or "-"
            wall = timings.get("total_s")
        created = str(m.get("created_at") or m.get("created") or "")
        out.append({
            "run_id": m.get("run_id", path.parent.name), "kind": kind,
            "created": created[:19].replace("T", " "),
            "event": window.get("event") or m.get("event") or "-",
            "symbol": symbol,
            "window": f"{str(window.get('start', '?'))[:16].replace('T', ' ')} .. "
                      f"{str(window.get('end', '?'))[:16].replace('T', ' ')}",
            "accounts": accounts, "policies": names, "wall_seconds": wall,
            "run_dir": str(path.parent), "created_at": created,
        })
    # full timestamps: two runs started in the same second are still ordered ("latest")
    out.sort(key=lambda r: (r["created_at"], r["run_id"]))
    return out


def resolve_run_dir(run: str | Path, root: Path) -> Path:
    """Find a finished run's directory.

    Parameters
    ----------
    run : str or Path
        A run directory, a run id, a unique prefix of one, or ``latest``.
    root : Path
        Runs directory.

    Returns
    -------
    Path
        The run directory (it holds ``manifest.json``).

    Raises
    ------
    CatalogError
        If no run matches, or a prefix matches several (the message lists them).
    """
    path = Path(run)
    if (path / "manifest.json").is_file():
        return path
    runs = [r for r in list_runs(root) if r["kind"] != "unreadable"]
    if not runs:
        raise CatalogError(f"no finished runs in {root}")
    if str(run) == "latest":
        return Path(runs[-1]["run_dir"])
    exact = [r for r in runs if r["run_id"] == str(run)]
    matches = exact or [r for r in runs if r["run_id"].startswith(str(run))]
    if not matches:
        raise CatalogError(f"no run {run!r} in {root} (liqbt list runs shows them)")
    if len(matches) > 1:
        raise CatalogError(f"run prefix {run!r} matches {len(matches)} runs: "
                           + ", ".join(r["run_id"] for r in matches[:5]))
    return Path(matches[0]["run_dir"])
