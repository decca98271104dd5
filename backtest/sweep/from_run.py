"""Run configs with an ``[ensemble]``: ``liqbt run CONFIG`` as a one-event sweep.

A run config names one pre-generated book; an ensemble needs every member to redraw it with
its own book seed and drawn inputs (:mod:`backtest.sweep.ensemble`). :func:`ensemble_sweep`
therefore turns the run config into a :class:`backtest.sweep.config.SweepConfig` in memory,
and :func:`run_ensemble` runs it with :func:`backtest.sweep.run_sweep`: the same planning,
cells, resumption, backends and ``intervals.parquet`` as ``liqbt sweep``, no second path.

The sweep has the run config's name, description and policies, one event and its sections
(``[execution]``, ``[market]``, ``[oracle]``, ``[keepers]``, ``[insurance_fund]``,
``[response]``) as ``[run]``. Its event entry comes from the run config and the book's
metadata (written by ``liqbt book generate``):

========================= ==================================================================
``event``                  the run's ``event``, else the book's
``start``, ``end``         the run's (None: the event's window)
``symbol``                 the run's ``symbol``, else the book's
``venue, market, interval`` the run's ``[tape]`` filters
``accounts``               the book's ``accounts`` (arrivals are drawn on top, as before)
``book_params``            the file the book was drawn from (below)
========================= ==================================================================

The generator parameters are the book's own (metadata ``generator``, sized as drawn). A book
drawn from a calibrated file (metadata ``calibration``) uses that file when it still gives
exactly these parameters and cures, so the calibration's leave-one-out ranges apply. Otherwise
(an explicit ``--size-usd``, a refitted or moved file, or plain non-default parameters) the
parameters are written to ``<sweep>/book-params.toml`` (with the fitted ``[response]``, and
the fit's ranges when only the size differs). A book without generator metadata (an imported
real book) is refused: an ensemble redraws the book.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from backtest.atomic import atomic_path
from backtest.books.generate import BookParams
from backtest.books.io import read_book_table
from backtest.engine.config import ResponseConfig, RunConfig, read_run_config
from backtest.errors import ConfigError
from backtest.sweep.config import SweepConfig
from backtest.sweep.execute import SweepOutcome, run_sweep, sweep_dir_for
from backtest.validation import describe, read_toml

BOOK_PARAMS_FILE = "book-params.toml"
"""Generator parameters written into the sweep directory when no existing file gives them."""

SECTIONS = ("execution", "market", "oracle", "keepers", "insurance_fund", "response")
"""Run-config sections that become the sweep's ``[run]``."""


def ensemble_sweep(cfg: RunConfig, ensemble: dict, config_path: str | Path,
                   runs: str | Path | None = None) -> SweepConfig:
    """Return the sweep an ensemble run config stands for (see the module docstring).

    Parameters
    ----------
    cfg : RunConfig
        The validated run config.
    ensemble : dict
        Its ``[ensemble]`` table as read.
    config_path : str or Path
        The run config file (named in errors).
    runs : str or Path, optional
        Runs directory; the sweep directory is ``<runs>/sweeps/<name>``, where a
        ``book-params.toml`` may be written.

    Returns
    -------
    SweepConfig

    Raises
    ------
    ConfigError
        An invalid ``[ensemble]`` field (named ``ensemble.<field>``), ``[tape] path`` (members
        draw their books and runs from the tape store), a book without generator metadata,
        or no event to draw the books for.
    BookError
        The book file cannot be read.
    """
    if cfg.tape.path is not None:
        raise ConfigError("field 'tape.path': an [ensemble] draws each member's book and run "
                          "from the tape store; narrow the tape with [tape] venue, market and "
                          "interval instead of a path", config_path)
    _, meta = read_book_table(cfg.book)
    if "generator" not in meta:
        raise ConfigError(f"[ensemble] needs a generated book (liqbt book generate): every "
                          f"member redraws it with its own seed, and {cfg.book} has no generator "
                          "metadata (an imported book?)", config_path)
    event = cfg.event or meta.get("event")
    if event is None:
        raise ConfigError("[ensemble]: give 'event' (the book's metadata names none): members "
                          "draw their books for a catalogued event", config_path)
    if not meta.get("accounts", "").isdigit():
        raise ConfigError(f"[ensemble]: the book {cfg.book} does not record its number of "
                          "accounts (metadata 'accounts'); regenerate it with liqbt book "
                          "generate", config_path)
    symbol = cfg.symbol or meta.get("symbol")
    raw = {"name": cfg.name, "description": cfg.description, "policies": list(cfg.policies),
           "ensemble": ensemble,
           "run": {name: getattr(cfg, name) for name in SECTIONS},
           "events": [{"event": event, "symbol": symbol, "venue": cfg.tape.venue,
                       "market": cfg.tape.market, "interval": cfg.tape.interval,
                       "start": cfg.start, "end": cfg.end,
                       "accounts": int(meta["accounts"])}]}
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), config_path) from None
    asset = (symbol or "").split("/")[0]
    params_file = book_params_file(meta, event, asset, sweep_dir_for(sweep, None, runs),
                                   config_path)
    ev = sweep.events[0].model_copy(update={"book_params": params_file})
    return sweep.model_copy(update={"events": [ev]})


def book_params_file(meta: dict[str, str], event: str, asset: str, sweep_dir: Path,
                     config_path: str | Path) -> Path | None:
    """Return a generator parameter file that redraws a book like the one ``meta`` describes.

    Parameters
    ----------
    meta : dict of str to str
        The book's ``liqbt.*`` metadata (``generator``, maybe ``calibration``, ``response``).
    event, asset : str
        Event key and base asset (sizing to a venue).
    sweep_dir : Path
        Where ``book-params.toml`` is written when needed.
    config_path : str or Path
        Named in errors.

    Returns
    -------
    Path or None
        The calibrated file the book was drawn from, ``<sweep_dir>/book-params.toml``, or None
        for default parameters.

    Raises
    ------
    ConfigError
        Generator or response metadata that does not validate (names the field).
    """
    from backtest.calibration.fitted import calibrated_params, write_calibrated
    from backtest.provenance import file_sha256

    try:
        params = BookParams.model_validate_json(meta["generator"])
        response = (ResponseConfig.model_validate_json(meta["response"])
                    if "response" in meta else None)
    except ValidationError as exc:
        raise ConfigError(describe(exc, "the book's generator metadata: "), config_path) \
            from None
    dest = sweep_dir / BOOK_PARAMS_FILE
    original = Path(meta["calibration"]) if "calibration" in meta else None
    if original is not None and original.is_file():
        again, again_meta = calibrated_params(original, event, asset)
        if again == params and again_meta.get("response") == meta.get("response"):
            return original
    if original is not None:  # calibrated, but the file no longer gives this book
        raw = read_toml(original) if original.is_file() else {}
        fitted = raw.get("book") if isinstance(raw.get("book"), dict) else None
        same_fit = fitted is not None and BookParams.model_validate(fitted).model_copy(
            update={"size_usd": params.size_usd, "represents": params.represents}) == params
        fit = raw.get("fit", {}) if same_fit else {}
        scalars = {k: v for k, v in fit.items() if not isinstance(v, dict | list)}
        if same_fit:  # the fitted parameters unchanged: the original's coverage check holds
            scalars |= {"drawn_from": str(original), "drawn_from_sha256": file_sha256(original)}
        write_calibrated(
            dest, params, response or ResponseConfig(), scalars,
            fit.get("event", []), raw.get("leave_one_out", []) if same_fit else [],
            f"generator parameters of a book drawn from {original} (liqbt run [ensemble])")
        return dest
    if params == BookParams():
        return None
    lines = [f"# generator parameters of {meta.get('event', 'a')} book, seed "
             f"{meta.get('seed', '?')} (liqbt run [ensemble])"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in params.model_dump().items() if v is not None]
    with atomic_path(dest) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return dest


def run_ensemble(config_path: str | Path, overrides: list[str] | None = None,
                 runs: str | Path | None = None, store: str | Path | None = None,
                 strategies: str | Path | None = None, events: str | Path | None = None,
                 scheduler=None, workers: int | None = None, show_progress: bool = True,
                 command: str | None = None) -> SweepOutcome:
    """Run (or resume) the ensemble of a run config through :func:`run_sweep`.

    Parameters
    ----------
    config_path : str or Path
        Run config with an ``[ensemble]`` section.
    overrides : list of str, optional
        ``KEY=VALUE`` replacements (``liqbt run --set``), ``ensemble.members=50`` included.
    runs, store, strategies, events : str or Path, optional
        Runs directory, tape store, strategies directory, event catalog.
    scheduler : str, optional
        Dask scheduler address; default local processes.
    workers : int, optional
        Local processes; default the CPU count.
    show_progress : bool
    command : str, optional
        Command line recorded in ``sweep.json``.

    Returns
    -------
    SweepOutcome
        ``intervals`` is the sweep's ``intervals.parquet``.

    Raises
    ------
    ConfigError
        A config without ``[ensemble]``, or as :func:`ensemble_sweep` and :func:`run_sweep`.
    """
    cfg, ensemble = read_run_config(config_path, overrides)
    if ensemble is None:
        raise ConfigError("no [ensemble] section: run it with `liqbt run`", config_path)
    sweep = ensemble_sweep(cfg, ensemble, config_path, runs)
    return run_sweep(config_path, cfg=sweep, runs=runs, store=store, strategies=strategies,
                     events=events, scheduler=scheduler, workers=workers,
                     show_progress=show_progress,
                     command=command or f"liqbt run {config_path}")
