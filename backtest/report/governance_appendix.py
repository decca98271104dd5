"""The governance report's reproducibility appendix, with no local absolute path in it.

The appendix names the command, the proposal (its text and sha256), the sweep, every input
file with its sha256, the engine and package versions the sweep recorded, and the git commit of
the checkout. Paths are shown relative to the working directory, the shared data directory
(``${LIQBT_SHARED_DATA}``) or the repository (:func:`portable_path`), so a report can be
published as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from backtest.provenance import file_sha256

if TYPE_CHECKING:
    from backtest.report.governance_data import GovernanceData


def portable_path(path: str | Path, base: Path | None = None) -> str:
    """Return a path as the report may show it: never a local absolute path.

    Under the working directory (or ``base``): relative to it; under ``LIQBT_SHARED_DATA``:
    ``${LIQBT_SHARED_DATA}/...``; under the repository: relative to it; otherwise
    ``.../<parent>/<name>``. Relative paths are kept.

    Parameters
    ----------
    path : str or Path
    base : Path, optional
        Directory to show paths relative to (default: the working directory).

    Returns
    -------
    str
    """
    import os

    p = Path(str(path))
    if not p.is_absolute():
        return str(p)
    p = Path(os.path.normpath(p))
    shared = os.environ.get("LIQBT_SHARED_DATA")
    roots = [("${LIQBT_SHARED_DATA}", shared)] if shared else []
    roots += [("", str(base or Path.cwd())), ("", str(_repo_root()))]
    for prefix, root in roots:
        try:
            rel = p.relative_to(Path(os.path.normpath(root)))
        except ValueError:
            continue
        return f"{prefix}/{rel}" if prefix else (str(rel) or ".")
    return ".../" + "/".join(p.parts[-2:])


def portable_command(command: str) -> str:
    """Return a command line with every absolute path made portable (:func:`portable_path`)."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return command
    return " ".join(shlex.quote(portable_path(w)) if w.startswith("/") else shlex.quote(w)
                    for w in words)


def scrub_paths(text: str) -> str:
    """Return ``text`` with every absolute path made portable (:func:`portable_path`).

    Parameters
    ----------
    text : str
        A message or file text that may name local paths.

    Returns
    -------
    str
    """
    import re

    return re.sub(r"(?<![\w.])/[^\s'\"(),:]+", lambda m: portable_path(m.group(0)), text)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """Return the git commit of the liqbt checkout (``+dirty`` if modified), or None.

    None when liqbt is not run from a git checkout or git is not installed.
    """
    import subprocess

    root = _repo_root()
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def reproducibility(data: GovernanceData) -> dict:
    """Return the appendix: command, proposal text and hash, sweep, inputs, versions, commit.

    No local absolute path appears: paths are shown relative to the working directory, the
    shared data directory or the repository (:func:`portable_path`), also inside the
    proposal's text (whose sha256 is that of the file as written).
    """
    m = data.manifest
    last = m.get("last_run", {})
    return {
        "command": portable_command(data.command),
        "proposal_path": portable_path(data.path),
        "proposal_sha256": file_sha256(data.path),
        "proposal_text": scrub_paths(data.path.read_text(encoding="utf-8")),
        "sweep_id": m["sweep_id"],
        "cells": m["cells"],
        "seeds": seeds_text(data.proposal),
        "units": (f"{data.units.count} {data.units.words()}"
                  + (" (intervals are taken over ensemble members)"
                     if data.units.kind == "member" else
                     " (no ensemble: intervals are taken over book seeds)")
                  + (f"; {data.conditioning.sentence()}" if data.conditioning else "")),
        "inputs": [(i["kind"], portable_path(i["path"]), i["sha256"]) for i in m["inputs"]],
        "engine": sorted(m.get("engine", {}).items()),
        "versions": sorted(m.get("versions", {}).items()),
        "git_commit": git_commit(),
        "timing": (f"{last.get('cells_computed', 0)} cells simulated, "
                   f"{last.get('cells_skipped', 0)} reused from an earlier run, "
                   f"{last.get('wall_seconds', 0.0):.1f} s wall on {last.get('backend', '?')}"),
    }


def seeds_text(proposal) -> str:
    """Return the proposal's book seeds, or how an ensemble draws them, as words.

    Parameters
    ----------
    proposal : backtest.report.proposal.Proposal

    Returns
    -------
    str
    """
    if proposal.ensemble is not None:
        return (f"drawn per member ({proposal.ensemble.members} ensemble members, ensemble seed "
                f"{proposal.ensemble.seed})")
    return ", ".join(str(s) for s in proposal.seeds)
