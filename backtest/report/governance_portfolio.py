"""The governance report of a portfolio proposal (``kind = "portfolio"``): what differs.

A portfolio proposal (:mod:`backtest.report.proposal`) targets the multi-asset lending +
cross-margin perp market of :mod:`backtest.portfolio` rather than a preset of ``strategies/``.
The report is the same page from the same sweep views; this module supplies the parts that
read the preset in a single-asset proposal:

- :func:`preset` and :func:`defaults`: the market's name and its parameters in force (every
  asset's risk parameters included, so the parameter table shows a value for each field);
- :func:`methodology`: book, trigger, fills, losses and what the portfolio model leaves out;
- :func:`reality`: the "against what happened" section, which says plainly that no published
  target exists for a synthetic multi-asset market;
- :func:`grid_fields`: the frontier's fields, resolved as portfolio policy fields.
"""

from __future__ import annotations

from backtest.portfolio.model import DEFAULT_ASSET_RISK
from backtest.report import build
from backtest.sweep.portfolio_grid import resolve_portfolio_field

SOURCE = "backtest/portfolio, docs/portfolios.md"
"""Where the portfolio model is documented (shown as the preset's source)."""

DESCRIPTION = ("multi-asset lending (Aave v3 LiquidationLogic: close factor of the debt, all of "
               "it at or below the full-close health factor, collateral seized with a bonus in "
               "the collateral order) and cross-margin / isolated perps (positions closed until "
               "equity is back to target_health x maintenance margin)")
"""What a portfolio market's liquidation rules are, in one sentence."""

NOT_MODELLED = (
    "Borrow interest, funding payments and accounts opening, closing or adding margin during "
    "the window: the book is the one open at the window's first candle.",
    "Behaviour changes: traders and keepers act as they did in history; a new parameter set "
    "does not change who opens which position.",
)
"""What the portfolio model never models; :func:`not_modelled` adds what the proposal's
``[portfolio.market]`` and ``[portfolio.keepers]`` leave off."""

NO_IMPACT = ("Market impact and cascades: liquidations do not move any asset's price; every "
             "tape is replayed as it was.")
NO_ORACLE = "Oracle delay: the candle decides liquidations."
NO_KEEPERS = ("Keeper latency, gas and capital: a keeper acts in the step, always paid its "
              "share of the bonus or penalty.")
NO_ADL = ("Auto-deleveraging and charging uncovered bad debt to the book's traders: what the "
          "insurance fund cannot cover is socialised outside the book (suppliers, token "
          "holders).")


def not_modelled(proposal) -> list[str]:
    """Return what the proposal's portfolio market leaves out, in plain words."""
    mk, k = proposal.market.market, proposal.market.keepers
    keepers = bool(k.latency_minutes or k.requires_profit or k.capital_usd_per_step)
    return ([NO_IMPACT] if mk.impact_model == "none" else []) + (
        [NO_ORACLE] if mk.oracle.model == "market" else []) + (
        [] if keepers else [NO_KEEPERS]) + ([NO_ADL] if mk.waterfall == "socialise" else []) + (
        list(NOT_MODELLED))


def fill_text(proposal) -> str:
    """Return where a liquidation of the proposal's market fills, in plain words."""
    mk = proposal.market.market
    price = ("the price that triggered it" if mk.oracle.model == "market"
             else "the step's close (the oracle decides, the market fills)")
    if mk.impact_model != "none":
        price += " times its asset's execution factor of the step (market impact)"
    return (f"A liquidation executes at {price}, asset by asset; lending collateral is seized "
            "in the collateral order at that price with the asset's liquidation bonus.")


def market_text(proposal) -> str | None:
    """Return the proposal's per-asset market impact in plain words (None: no impact)."""
    mk = proposal.market.market
    if mk.impact_model == "none":
        return None
    depth = ", ".join(f"{b} {build.usd(v)}" for b, v in mk.depth_usd.items())
    text = (f"Market impact per asset ({mk.impact_model} model): each asset's net liquidation "
            f"flow in a step moves its fills against its 1% depth ({depth})")
    if mk.cascade:
        text += (f", and the move feeds back into its later prices "
                 f"({100 * mk.permanent_fraction:g}% permanent, the rest decaying with a "
                 f"{mk.transient_half_life_minutes:g}-minute half-life)")
    return text + "."


def oracle_keepers_text(proposal) -> list[str]:
    """Return the proposal's oracle and keepers in plain words (the single-asset sentences)."""
    mk, k = proposal.market.market, proposal.market.keepers
    keepers = k.model_dump(mode="json")
    keepers["gas"] = {"gas_tape": keepers.get("gas_tape"), "column": k.gas_tape_column,
                      "gas_price_gwei": k.gas_price_gwei}
    out = build.oracle_keeper_text({"oracle": mk.oracle.model_dump(mode="json"),
                                    "keepers": keepers})
    if build._keepers_modelled({"keepers": keepers}):
        out.append("In the multi-asset book gas is paid per position liquidated (one "
                   "liquidationCall per collateral, one close per perp), the profit test covers "
                   "an account's whole liquidation, and the keepers' capital applies to each "
                   "asset separately.")
    return out


def preset(proposal) -> dict:
    """Return the market shown where a single-asset report names its preset.

    Parameters
    ----------
    proposal : backtest.report.proposal.Proposal

    Returns
    -------
    dict
        ``name``, ``family`` (``portfolio``), ``description``, ``source``, ``what`` (how the
        page names it).
    """
    return {"name": proposal.protocol, "family": "portfolio", "description": DESCRIPTION,
            "source": SOURCE, "what": "the multi-asset market"}


def defaults(proposal) -> dict:
    """Return the parameters in force, flattened (``assets.ETH.liquidation_bonus``, ...).

    Assets without an entry in ``[portfolio.params.assets]`` show their defaults
    (:data:`backtest.portfolio.DEFAULT_ASSET_RISK`).
    """
    raw = proposal.market.params.model_dump(mode="json")
    assets = {k: v.model_dump(mode="json") for k, v in DEFAULT_ASSET_RISK.items()}
    assets.update(raw["assets"])
    raw["assets"] = assets
    raw.pop("chunk_size", None)
    return build._flatten(raw)


def grid_fields(proposal) -> list[str]:
    """Return the frontier's fields as resolved portfolio policy fields, in file order."""
    return [resolve_portfolio_field(k, "frontier") for k in proposal.frontier]


def methodology(proposal) -> dict:
    """Return the methodology entries that differ from a single-asset proposal's.

    Returns
    -------
    dict
        ``books`` (one sentence per event), ``book_intro``, ``trigger``, ``fill``,
        ``market`` (per-asset impact, or None), ``oracle_keepers``, ``insurance_fund``,
        ``losses``,
        ``not_modelled``, ``preset``.
    """
    b = proposal.market.book_params
    params = proposal.market.params
    perps = 1.0 - b.lending_fraction
    books = [
        f"{ev.key}: {ev.accounts:,} accounts per seed over "
        f"{', '.join(ev.symbols) if ev.symbols else 'the event’s assets'}: "
        f"{100 * b.lending_fraction:g}% lending (collateral median "
        f"{build.usd(b.lending_collateral_median_usd)}, borrowing "
        f"{100 * b.utilisation_min:g}–{100 * b.utilisation_max:g}% of the borrowing power), "
        f"{100 * b.cross_fraction:g}% cross-margin and {100 * (perps - b.cross_fraction):g}% "
        f"isolated perps ({100 * b.long_fraction:g}% of positions long, leverage "
        f"{', '.join(f'{x:g}x' for x in b.leverage_choices)}, median notional "
        f"{build.usd(b.perp_notional_median_usd)})."
        for ev in proposal.events]
    trig = params.trigger
    return {
        "books": books,
        "book_intro": ("Nobody's real positions are used. Each event gets a synthetic "
                       "multi-asset book drawn with a fixed seed from the documented "
                       "distributions of docs/portfolios.md: lending accounts with several "
                       "collaterals against one stablecoin debt, cross-margin perp accounts "
                       "sharing one margin balance, isolated perps; every account is healthy "
                       "at the window's first open."),
        "trigger": (trig, build.TRIGGER_TEXT[trig]),
        "fill": ("trigger", fill_text(proposal)),
        "market": market_text(proposal),
        "oracle_keepers": oracle_keepers_text(proposal),
        "insurance_fund": build.usd(params.insurance_fund_usd),
        "losses": ("Lending bonuses are split between the liquidator and the protocol "
                   f"(protocol fee {100 * params.protocol_fee:g}% of the bonus), perp "
                   f"penalties between the keeper ({100 * params.perp_keeper_share:g}%) and the "
                   f"insurance fund (initial balance {build.usd(params.insurance_fund_usd)}); "
                   "bad debt is drawn from the fund, and what it cannot cover is "
                   + ("auto-deleveraged per asset (perps; lending bad debt is socialised)."
                      if proposal.market.market.waterfall == "adl"
                      else "socialised outside the book.")),
        "not_modelled": not_modelled(proposal),
        "preset": preset(proposal),
    }


def reality(proposal) -> list[dict]:
    """Return the "against what happened" entries: no target exists for a portfolio book.

    Returns
    -------
    list of dict
        One per event: ``event``, ``rows`` (empty), ``notes``, ``sentence``, ``calibrated``
        (False), as :func:`backtest.report.governance_reality.against_what_happened`.
    """
    return [{"event": ev.key, "rows": [], "notes": [], "calibrated": False,
             "sentence": "No target exists: the multi-asset book is synthetic and not sized to "
                         "any venue or protocol, and no published figure of liquidations or "
                         "bad debt in a multi-asset lending + cross-margin market is stored "
                         "(data/validation/ holds single-asset targets), so this event is not "
                         "held against what happened."}
            for ev in proposal.events]


__all__ = ["defaults", "grid_fields", "methodology", "preset", "reality"]
