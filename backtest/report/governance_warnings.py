"""Warnings of a governance report: where the inputs do not match the question asked.

Four checks, each returning plain sentences:

- :func:`asset_warnings`: the book stands for one asset (``asset`` in the book metadata, else a
  token such as ``weth`` in the book-parameter file name, else in the proposal name) but the
  event replays another asset's prices (a WETH loan book on BTC/USDT candles).
- :func:`mechanism_warnings`: an event is known for a mechanism the run does not model (Black
  Thursday's network congestion and zero-bid auctions), judged from the event's catalog key,
  the run's ``[keepers]`` and ``[oracle]`` sections and the preset's family.
- :func:`empty_warnings`: events where nothing happened (every measure zero for every set).
- :func:`unit_warnings`: one book seed and no ensemble, so the figures carry no error bars.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

ASSET_TOKENS: dict[str, str] = {
    "eth": "ETH", "weth": "ETH", "steth": "ETH", "wsteth": "ETH",
    "btc": "BTC", "wbtc": "BTC", "cbbtc": "BTC", "sol": "SOL", "bnb": "BNB", "avax": "AVAX",
    "link": "LINK", "matic": "MATIC", "doge": "DOGE", "xrp": "XRP", "ada": "ADA",
}
"""Lower-case token -> asset it stands for (wrapped and staked forms map to the base asset)."""


def normalise_asset(asset: str | None) -> str | None:
    """Return the base asset of a symbol or token (``"WETH"`` -> ``"ETH"``), None if unknown."""
    if not asset:
        return None
    token = str(asset).split("/")[0].strip().lower()
    return ASSET_TOKENS.get(token, token.upper())


def asset_in_text(text: str | None) -> str | None:
    """Return the one asset a text names (``"aave-weth-loans"`` -> ``"ETH"``), else None.

    None also when the text names several different assets.
    """
    if not text:
        return None
    found = {ASSET_TOKENS[t] for t in re.split(r"[^a-z0-9]+", str(text).lower())
             if t in ASSET_TOKENS}
    return found.pop() if len(found) == 1 else None


def book_asset(meta: dict, book_params: str | None, proposal_name: str) -> tuple[str, str] | None:
    """Return (asset, where it came from) of the book a proposal is about, or None.

    Parameters
    ----------
    meta : dict of str to str
        Book metadata (an ``asset`` key wins).
    book_params : str or None
        The event's book-parameter file as written in the proposal.
    proposal_name : str
    """
    if meta.get("asset"):
        return normalise_asset(meta["asset"]), "the book's metadata"
    if book_params:
        a = asset_in_text(Path(book_params).stem)
        if a:
            return a, f"the book parameters {Path(book_params).name}"
    a = asset_in_text(proposal_name)
    return (a, "the proposal's name") if a else None


def asset_warnings(events: list[tuple[str, str, dict, str | None]],
                   proposal_name: str) -> list[str]:
    """Return a sentence per (tape, book asset) pair that differ, naming the events.

    Parameters
    ----------
    events : list of (key, symbol, book metadata, book_params)
    proposal_name : str

    Returns
    -------
    list of str
    """
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for key, symbol, meta, params in events:
        found = book_asset(meta, params, proposal_name)
        tape = normalise_asset(symbol)
        if found is None or tape is None or found[0] == tape:
            continue
        groups.setdefault((symbol, tape, *found), []).append(key)
    out = []
    for (symbol, tape, asset, where), keys in groups.items():
        verb = "replays" if len(keys) == 1 else "replay"
        out.append(f"{_join(keys)} {verb} {symbol} prices against a book meant for {asset} "
                   f"(from {where}): {'its' if len(keys) == 1 else 'their'} figures describe "
                   f"that book under {tape}'s price path, not {asset}'s. Read them as a stress "
                   f"scenario, not as what {asset} borrowers went through.")
    return out


@dataclass(frozen=True)
class Mechanism:
    """A mechanism that defined a historical event, and how to tell whether a run models it.

    Attributes
    ----------
    name : str
    what : str
        What happened, in plain words, with a source.
    modelled : callable
        ``(run_sections_json, preset) -> bool``, ``preset`` a :class:`PresetTraits`.
    absent : str
        What the run does instead when the mechanism is not modelled.
    """

    name: str
    what: str
    modelled: Callable[[dict, PresetTraits], bool]
    absent: str


class PresetTraits(NamedTuple):
    """What the mechanism checks need to know of the preset.

    Attributes
    ----------
    family : str
        The preset's family (``auction``, ``partial``, ...; ``portfolio`` for a portfolio
        market).
    zero_bids : bool
        Whether an auction no keeper takes within its bid window is dealt to a zero bid
        (``[auction] zero_bid_minutes > 0``, Maker's Liquidations 1.2 flip auctions).
    """

    family: str
    zero_bids: bool = False


def _congestion(run: dict, preset: PresetTraits) -> bool:
    k = run.get("keepers") or {}
    gas = bool(k.get("gas_tape")) or (k.get("gas_price_gwei") or 0) > 0
    return bool(gas and k.get("requires_profit")) or (k.get("latency_minutes") or 0) > 0


def _zero_bids(run: dict, preset: PresetTraits) -> bool:
    return preset.zero_bids and _congestion(run, preset)


def _oracle_delay(run: dict, preset: PresetTraits) -> bool:
    return (run.get("oracle") or {}).get("model", "market") != "market"


EVENT_MECHANISMS: dict[str, tuple[Mechanism, ...]] = {
    "black-thursday-2020": (
        Mechanism("network congestion",
                  "the Ethereum network became congested, gas prices spiked and liquidation "
                  "keepers stalled or failed (MakerDAO, Black Thursday response thread, "
                  "https://forum.makerdao.com/t/black-thursday-response-thread/1433)",
                  _congestion,
                  "keepers act without delay and without gas costs (no [keepers] gas tape "
                  "with requires_profit, no latency)"),
        Mechanism("zero-bid auctions",
                  "with keepers stalled, Maker collateral auctions were won at bids of 0 DAI, "
                  "so vault owners lost all their collateral and Maker was left with bad debt "
                  "(same source)",
                  _zero_bids,
                  "no collateral auction can clear at a zero bid (only an auction preset with "
                  "a zero-bid window, such as maker-flip, can, and only under congestion)"),
        Mechanism("oracle delay",
                  "Maker's oracle price lagged the market (its oracle security module delays "
                  "prices by an hour)",
                  _oracle_delay,
                  "the candle itself decides liquidations ([oracle] model = \"market\")"),
    ),
}
"""Catalog event key -> the mechanisms that defined it."""


def mechanism_warnings(events: list[tuple[str, str]], run: dict,
                       preset: PresetTraits) -> list[str]:
    """Return a sentence per event that runs without a mechanism that defined it.

    Parameters
    ----------
    events : list of (key shown, catalog event key)
    run : dict
        The proposal's run sections as JSON values (``keepers``, ``oracle``, ...).
    preset : PresetTraits
        The preset's family and whether its auctions can end at a zero bid.

    Returns
    -------
    list of str
    """
    out = []
    for key, event in events:
        missing = [m for m in EVENT_MECHANISMS.get(event, ()) if not m.modelled(run, preset)]
        if missing:
            out.append(f"{key} runs without {_join([m.name for m in missing])}, which defined "
                       "the event: " + "; ".join(f"{m.what}, but here {m.absent}"
                                                 for m in missing) + ".")
    return out


def empty_warnings(values, scenarios: list[tuple[str, str, str]],
                   measures: list[str]) -> list[str]:
    """Return a sentence per scenario in which every measure is zero for every set.

    Parameters
    ----------
    values : polars.DataFrame
        Per-unit values (:func:`backtest.report.governance_stats.unit_values`).
    scenarios : list of (key, event, stress)
    measures : list of str
        USD measures that are zero when nothing happened.
    """
    import polars as pl

    empty = []
    for key, event, stress in scenarios:
        v = values.filter((pl.col("event") == event) & (pl.col("stress") == stress))
        if v.height and all(float(v[m].fill_null(0.0).abs().max()) < 0.5 for m in measures):
            empty.append(key)
    if not empty:
        return []
    one = len(empty) == 1
    it, verb, them = ("it", "was", "it") if one else ("they", "were", "them")
    return [f"Nothing happened in {_join(empty)}: no parameter set liquidated anything, left "
            f"bad debt, drew on the insurance fund or auto-deleveraged, so {it} {verb} no "
            f"test of the proposal; the totals and counts of events include {them} only as "
            "ties."]


def unit_warnings(kind: str, count: int) -> list[str]:
    """Return a sentence when the figures rest on a single book seed or member."""
    if count > 1:
        return []
    what = "one ensemble member" if kind == "member" else "one book seed and no ensemble"
    return [f"Every figure comes from {what}: there is no interval, and another draw of the "
            "book can move bad debt several-fold. Add seeds or an [ensemble] section before "
            "relying on the ranking."]


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
