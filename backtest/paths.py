"""Where liqbt reads and writes, from options, environment variables or defaults.

Precedence for every location: explicit argument (CLI option) > environment variable >
default relative to the current working directory (the project root when run via ``make``).

=================  ======================  ===========================================
location           environment variable    default
=================  ======================  ===========================================
tape store         ``LIQBT_TAPES``         ``data/tapes``
event catalog      ``LIQBT_EVENTS``        ``data/events.toml`` (else the source tree's)
strategies         ``LIQBT_STRATEGIES``    ``strategies`` (else the source tree's)
runs + catalog     ``LIQBT_RUNS``          ``runs``
reports            ``LIQBT_REPORTS``       ``reports``
book parameters    ``LIQBT_BOOK_PARAMS``   ``configs/calibration/perps-fitted.toml``
                                           (else the source tree's): the calibrated
                                           perp book ``liqbt book generate`` draws
                                           unless told otherwise
=================  ======================  ===========================================

Real market data is never located by this module: importers take explicit paths.
"""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _resolve(explicit: str | Path | None, env: str, default: str, fallback: bool) -> Path:
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(env):
        return Path(os.environ[env])
    local = Path(default)
    if fallback and not local.exists() and (_SOURCE_ROOT / default).exists():
        return _SOURCE_ROOT / default
    return local


def tape_store(explicit: str | Path | None = None) -> Path:
    """Return the tape store directory (see module docstring for precedence)."""
    return _resolve(explicit, "LIQBT_TAPES", "data/tapes", fallback=False)


def events_file(explicit: str | Path | None = None) -> Path:
    """Return the event catalog file (see module docstring for precedence)."""
    return _resolve(explicit, "LIQBT_EVENTS", "data/events.toml", fallback=True)


def strategies_dir(explicit: str | Path | None = None) -> Path:
    """Return the directory where policy files are looked up by name."""
    return _resolve(explicit, "LIQBT_STRATEGIES", "strategies", fallback=True)


def runs_dir(explicit: str | Path | None = None) -> Path:
    """Return the directory holding run directories and the DuckDB catalog."""
    return _resolve(explicit, "LIQBT_RUNS", "runs", fallback=False)


def reports_dir(explicit: str | Path | None = None) -> Path:
    """Return the directory HTML reports are written to."""
    return _resolve(explicit, "LIQBT_REPORTS", "reports", fallback=False)


def default_book_params(explicit: str | Path | None = None) -> Path:
    """Return the calibrated generator parameters a book is drawn with by default."""
    return _resolve(explicit, "LIQBT_BOOK_PARAMS", "configs/calibration/perps-fitted.toml",
                    fallback=True)
