"""Provenance of a result: file hashes, package versions, code digests, runtime, peak memory.

Every run kind (``liqbt run``, portfolio runs, sweeps, governance reports) records where its
result came from with these helpers, so a manifest's ``sha256``, ``versions``, ``code`` and
``runtime`` fields mean the same thing whichever command wrote them.
"""

from __future__ import annotations

import hashlib
import platform
import resource
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from backtest import _jit

VERSIONED = ("liqbt", "numpy", "numba", "polars", "pyarrow", "duckdb", "plotly", "pydantic",
             "jinja2", "rich", "typer", "scipy", "distributed")
"""Distributions whose installed versions a manifest records."""

NOT_INSTALLED = "not installed"
"""The version recorded for a distribution of :data:`VERSIONED` that is not installed."""


def command_line(fallback: str | None = None) -> str | None:
    """Return this process's command as the user typed it: ``liqbt`` and its quoted arguments.

    What a written file's header or a sweep's manifest records, so that it can be re-made.

    Parameters
    ----------
    fallback : str, optional
        Returned instead when this process is not the ``liqbt`` program (a Python call, a
        test), whose arguments are not liqbt's.

    Returns
    -------
    str or None
    """
    if Path(sys.argv[0]).name != "liqbt":
        return fallback
    return "liqbt " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes, read in 1 MiB blocks.

    Parameters
    ----------
    path : str or Path
        A readable regular file.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    OSError
        If the file cannot be opened or read (callers check inputs first, see
        :func:`backtest.engine.run.check_inputs`).
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions(dists: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    """Return the installed version of each distribution.

    Parameters
    ----------
    dists : tuple of str
        Distribution names; default :data:`VERSIONED`.

    Returns
    -------
    dict of str to str
        Distribution name -> version string, :data:`NOT_INSTALLED` where it is missing.
    """
    out = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = NOT_INSTALLED
    return out


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB.

    Returns
    -------
    float
        ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux) / 1024.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def runtime() -> dict[str, str | float]:
    """Return the runtime a manifest records: Python version, platform, peak memory.

    Returns
    -------
    dict
        ``python`` (str, e.g. ``"3.12.3"``), ``platform`` (str), ``peak_rss_mb`` (float, MB,
        :func:`peak_rss_mb` at the time of the call).
    """
    return {"python": platform.python_version(), "platform": platform.platform(),
            "peak_rss_mb": peak_rss_mb()}


PACKAGE = Path(__file__).resolve().parent
"""The installed ``backtest`` package directory."""

#: Subpackages that only present results (HTML reports, the command line): left out of the
#: source digest of :func:`engine_version`, so a report's wording does not recompute cells.
PRESENTATION = ("cli", "report")


def simulation_sources(package: Path | None = None) -> list[Path]:
    """Return the package's source files that a cell's result can depend on.

    Every ``.py`` file under the package (kernels, engine, books, tapes, markets, policies,
    sweeps, results, ...) except the presentation subpackages (:data:`PRESENTATION`): the
    conversion of a config into kernel inputs lives outside the kernels (e.g. keeper latency
    in whole steps, ``backtest/engine/market.py``), so digesting the kernels alone let a
    resumed sweep reuse cells computed by older code.

    Parameters
    ----------
    package : Path, optional
        The package directory (default :data:`PACKAGE`, this installation's ``backtest``).

    Returns
    -------
    list of Path
        Sorted source paths.
    """
    package = PACKAGE if package is None else package
    return sorted(p for p in package.rglob("*.py")
                  if p.relative_to(package).parts[0] not in PRESENTATION)


def engine_version() -> dict:
    """Return the package version, the kernels' digest and the simulation sources' digest.

    They are part of every sweep cell id and book name (:mod:`backtest.sweep.plan`): a change
    to any source a result can depend on (:func:`simulation_sources`) recomputes a resumed
    sweep's cells; run manifests record them as ``code``.
    """
    try:
        pkg = version("liqbt")
    except PackageNotFoundError:
        pkg = "unknown"
    return {"liqbt": pkg, "kernels": Path(_jit.CACHE_DIR).name,
            "sources": _jit.source_digest(simulation_sources())}


__all__ = ["NOT_INSTALLED", "PACKAGE", "PRESENTATION", "VERSIONED", "engine_version",
           "file_sha256", "package_versions", "peak_rss_mb", "runtime", "simulation_sources"]
