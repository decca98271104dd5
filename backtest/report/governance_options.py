"""The governance report of an options proposal (``kind = "options"``): what differs.

An options proposal (:mod:`backtest.report.proposal`) targets the options venue of
:mod:`backtest.options` (Black-76 marks, scenario maintenance margin, liquidation closing every
leg, ``docs/options.md``) rather than a preset of ``strategies/``. The report is the same page
from the same sweep views as a single-asset or portfolio proposal; this module supplies the
parts that read the preset there, with the interface of
:mod:`backtest.report.governance_portfolio`:

- :func:`preset` and :func:`defaults`: the venue's name and its rule in force (every
  :class:`~backtest.options.params.OptionsParams` field, the scenario grid as ``grid.<field>``);
- :func:`methodology`: book, implied volatility, trigger, close-out, losses and what the
  options model leaves out;
- :func:`reality`: no published target of option liquidations is stored;
- :func:`grid_fields`: the frontier's fields, resolved as options rule fields.
"""

from __future__ import annotations

from backtest.report import build
from backtest.sweep.options_grid import resolve_options_field

SOURCE = "backtest/options, docs/options.md"
"""Where the options model is documented (shown as the preset's source)."""

DESCRIPTION = ("European BTC / ETH options in accounts with a USD balance, marked with Black-76 "
               "at each step's implied volatility and margined by their worst loss over a grid "
               "of price and volatility shocks plus a contingency per short option (the shape "
               "of Deribit's portfolio margin); an account below that maintenance margin has "
               "every leg closed at once, at the mark plus a spread, and pays a penalty on the "
               "underlying notional")
"""What an options venue's liquidation rules are, in one sentence."""

NOT_MODELLED = (
    "Partial liquidation: Deribit reduces positions step by step; here every leg of an account "
    "is closed at once.",
    "Market impact of the close-outs, keeper latency and auto-deleveraging: a close-out costs "
    "the configured spread and never moves the underlying or its implied volatility.",
    "Volatility smile and term structure: one implied volatility per underlying and step marks "
    "every strike and expiry, so far out-of-the-money puts are marked cheaper than a skewed "
    "market would mark them.",
    "Futures basis and Deribit's 30-minute settlement average: the underlying's spot price "
    "stands for the forward, and expiries settle at the candle's close.",
    "Accounts trading during the window: the book is the one open at the window's first "
    "candle; nobody adds margin, rolls or hedges.",
)


TRIGGER_TEXT = {
    "extreme": "An account is valued at the candle's low and at its high, with the step's "
               "implied volatility, and is liquidatable where its equity is below its "
               "maintenance margin at either; it is liquidated at the worse of the two (an "
               "option seller's equity is concave in the price, so its worst point in the "
               "candle is an extreme).",
    "close": "An account is liquidatable only if its equity is below its maintenance margin at "
             "the candle's close.",
}
"""How each trigger of :class:`~backtest.options.params.OptionsParams` tests accounts."""


def preset(proposal) -> dict:
    """Return the venue shown where a single-asset report names its preset.

    Parameters
    ----------
    proposal : backtest.report.proposal.Proposal

    Returns
    -------
    dict
        ``name``, ``family`` (``options``), ``description``, ``source``, ``what`` (how the
        page names it).
    """
    return {"name": proposal.protocol, "family": "options", "description": DESCRIPTION,
            "source": SOURCE, "what": "the options venue"}


def defaults(proposal) -> dict:
    """Return the rule in force, flattened (``penalty_rate``, ``grid.price_range``, ...)."""
    return build._flatten(proposal.options_section.params.model_dump(mode="json"))


def grid_fields(proposal) -> list[str]:
    """Return the frontier's fields as resolved options rule fields, in file order."""
    return [resolve_options_field(k, "frontier") for k in proposal.frontier]


def methodology(proposal) -> dict:
    """Return the methodology entries that differ from a single-asset proposal's.

    Returns
    -------
    dict
        ``books`` (one sentence per event), ``book_intro``, ``trigger``, ``fill``,
        ``market`` (None), ``oracle_keepers``, ``insurance_fund``, ``losses``,
        ``not_modelled``, ``preset``.
    """
    sec = proposal.options_section
    b, params = sec.book_params, sec.params
    shares = {k.replace("_", " "): v for k, v in b.strategy_weights.items()}
    total = sum(shares.values()) or 1.0
    mix = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in shares.items() if v > 0)
    books = [
        f"{ev.key}: {ev.accounts:,} accounts per seed on {', '.join(sec.underlyings)} options "
        f"at {ev.interval or sec.interval} steps ({mix}; underlying notional median "
        f"{build.usd(b.notional_median_usd)}; sellers post (1 + cushion) x maintenance margin, "
        f"cushion mean {b.cushion_shape * b.cushion_scale:g})."
        for ev in proposal.events]
    spread = (f"{100 * params.spread:g} vol points" if params.spread_mode == "vol_points"
              else f"{100 * params.spread:g}% of the mark")
    g = params.grid
    return {
        "books": books,
        "book_intro": ("Nobody's real positions are used. Each event gets a synthetic options "
                       "book drawn with a fixed seed from the documented distributions of "
                       "docs/options.md (strategies, expiries among the next listed dailies, "
                       "weeklies, monthlies and quarterlies, strikes out of the money by a "
                       "drawn number of standard deviations), every account healthy at the "
                       "window's first open under the rule in force. Implied volatility is the "
                       "underlying's trailing one-day realised volatility plus "
                       f"{100 * sec.iv_premium:g} vol points, per step, without lookahead "
                       "(Deribit's DVOL index is published only from November 2022 and for "
                       "BTC). Every parameter set runs on that one book, so a stricter margin "
                       "can find accounts below it at the first step."),
        "trigger": (params.trigger, TRIGGER_TEXT[params.trigger]),
        "fill": ("mark plus spread",
                 f"Every leg of a liquidated account is closed at once: shorts bought back and "
                 f"longs sold at Black-76 with the implied volatility moved against the "
                 f"account by {spread}. The maintenance margin is the worst loss over "
                 f"{g.price_steps} price shocks within +-{100 * g.price_range:g}% and the "
                 f"volatility down {100 * g.vol_down:g}% / same / up {100 * g.vol_up:g}% "
                 f"(30-day option, scaled by (30 / days)^{g.vol_power:g}), plus "
                 f"{100 * g.contingency_rate:g}% of the underlying per short option."),
        "market": None,
        "oracle_keepers": [],
        "insurance_fund": build.usd(params.insurance_fund_usd),
        "losses": (f"The liquidation penalty is {100 * params.penalty_rate:g}% of the closed "
                   f"legs' underlying notional, {100 * params.keeper_share:g}% to the keeper "
                   f"and the rest to the insurance fund (initial balance "
                   f"{build.usd(params.insurance_fund_usd)}) out of what cash remains; negative "
                   "cash after a close-out, or after an expiry settles an account's last "
                   "legs, is bad debt, drawn from the fund, and what the fund cannot cover is "
                   "socialised. User losses to liquidation compare each account's equity at "
                   "the last close with the equity it would have had if never liquidated (its "
                   "legs settled at expiry and marked at the last close). They can be "
                   "negative: after a crash the trailing realised volatility, and with it the "
                   "implied volatility of the last close, is high, so the short options an "
                   "account would still hold are marked dear, and an account closed earlier "
                   "can keep more than holding would have left it."),
        "not_modelled": list(NOT_MODELLED),
        "preset": preset(proposal),
    }


def reality(proposal) -> list[dict]:
    """Return the "against what happened" entries: no target exists for an options book.

    Returns
    -------
    list of dict
        One per event: ``event``, ``rows`` (empty), ``notes``, ``sentence``, ``calibrated``
        (False), as :func:`backtest.report.governance_reality.against_what_happened`.
    """
    return [{"event": ev.key, "rows": [], "notes": [], "calibrated": False,
             "sentence": "No target exists: the options book is synthetic and not sized to any "
                         "venue, and no published figure of option liquidations, their "
                         "penalties or an options venue's insurance fund draw is stored "
                         "(data/validation/ holds perp and lending targets), so this event is "
                         "not held against what happened."}
            for ev in proposal.events]


__all__ = ["defaults", "grid_fields", "methodology", "preset", "reality"]
