"""What a book holds: side mix, open interest, collateral and debt, leverage, health, entry ages.

Uses the engine's account model (:mod:`backtest.books.schema`): ``units = side x size``,
``equity_at_entry = size x entry_price / leverage`` (USD), ``cash = equity_at_entry - units x
entry_price`` and, at a price ``p``, ``equity = cash + units x p``. Health is measured as the
engine measures it for the simple families (``docs/books.md``, account model):

- perp: ``equity / (maintenance_margin_rate x |units| x p)``, liquidatable below 1;
- loan: health factor ``liquidation_threshold x size x p / debt`` with ``debt = -cash``
  (Aave v3 ``healthFactor``, https://github.com/aave/aave-v3-core/blob/master/contracts/
  protocol/libraries/logic/GenericLogic.sol), liquidatable below 1.
"""

from __future__ import annotations

import numpy as np

from backtest.books.schema import Book, describe_meta

#: Quantile levels reported for every distribution (0 = min, 1 = max).
QUANTILES = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)
_MS_PER_DAY = 86_400_000


def summarize_book(book: Book, price: float | None = None,
                   maintenance_margin_rate: float = 0.005,
                   liquidation_threshold: float | None = 0.825) -> dict:
    """Summarise a validated book.

    Parameters
    ----------
    book : Book
        A validated book (:func:`backtest.books.read_book`).
    price : float, optional
        USD per asset unit at which positions are valued; default each account's entry price.
    maintenance_margin_rate : float
        Fraction of perp notional, > 0 (``hard`` policy: 0.005).
    liquidation_threshold : float or None
        Fraction of loan collateral value, in (0, 1]; None leaves out the loans' health factor.

    Returns
    -------
    dict
        ``accounts`` (int); ``price_usd`` (float or None); ``meta`` (the book's ``liqbt.*``
        metadata, decoded); ``groups`` (list of dicts per product and side: ``accounts``,
        ``notional_usd`` = ``size x price``, ``debt_usd``, ``equity_usd``);
        ``perp_notional_usd`` (perp notional, both sides), ``open_interest_usd`` (as venues
        publish it: each contract once, half of ``perp_notional_usd``), ``loan_collateral_usd``,
        ``loan_debt_usd`` (USD); ``quantile_levels`` (:data:`QUANTILES`); ``distributions``
        (quantiles of ``leverage``, ``health_perp``, ``health_factor_loan`` and
        ``entry_age_days``, each a list of float, a key absent when no account has it);
        ``liquidatable`` (accounts with health below 1 at that price).

    Raises
    ------
    ValueError
        If ``price``, ``maintenance_margin_rate`` or ``liquidation_threshold`` is not a
        positive finite number.
    """
    for name, value in (("price", price), ("maintenance_margin_rate", maintenance_margin_rate),
                        ("liquidation_threshold", liquidation_threshold)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    f = book.frame
    product = f["product"].to_numpy()
    side = f["side"].to_numpy().astype(np.float64)
    size = f["size"].to_numpy()
    entry = f["entry_price"].to_numpy()
    leverage = f["leverage"].to_numpy()
    p = entry if price is None else np.full_like(entry, float(price))
    units = side * size
    equity0 = size * entry / leverage
    cash = equity0 - units * entry
    equity = cash + units * p
    notional = size * p
    is_loan = product == "loan"
    is_perp = ~is_loan
    debt = np.where(is_loan, -cash, 0.0)

    groups = []
    for prod, mask_p in (("perp", is_perp), ("loan", is_loan)):
        for label, s in (("long", 1.0), ("short", -1.0)):
            mask = mask_p & (side == s)
            if mask.any():
                groups.append({"product": prod, "side": label, "accounts": int(mask.sum()),
                               "notional_usd": float(notional[mask].sum()),
                               "debt_usd": float(debt[mask].sum()),
                               "equity_usd": float(equity[mask].sum())})

    health_perp = equity[is_perp] / (maintenance_margin_rate * notional[is_perp])
    distributions = {"leverage": leverage, "health_perp": health_perp}
    liquidatable = int((health_perp < 1.0).sum())
    if liquidation_threshold is not None and is_loan.any():
        hf = liquidation_threshold * notional[is_loan] / debt[is_loan]
        distributions["health_factor_loan"] = hf
        liquidatable += int((hf < 1.0).sum())
    meta = describe_meta(book.meta)
    ages = _entry_ages_days(f["entry_time"].cast(int).to_numpy(), meta.get("window_start"))
    distributions["entry_age_days"] = ages
    return {
        "accounts": len(book),
        "price_usd": None if price is None else float(price),
        "meta": {k: v for k, v in meta.items() if isinstance(v, str | int | float)},
        "groups": groups,
        "perp_notional_usd": float(notional[is_perp].sum()),
        "open_interest_usd": 0.5 * float(notional[is_perp].sum()),
        "loan_collateral_usd": float(notional[is_loan].sum()),
        "loan_debt_usd": float(debt[is_loan].sum()),
        "quantile_levels": list(QUANTILES),
        "distributions": {k: [float(x) for x in np.quantile(v, QUANTILES)]
                          for k, v in distributions.items() if len(v)},
        "liquidatable": liquidatable,
    }


def _entry_ages_days(entry_ms: np.ndarray, window_start: object) -> np.ndarray:
    """Days from each entry to the book's window start (or to the latest entry)."""
    reference = np.max(entry_ms) if len(entry_ms) else 0
    if isinstance(window_start, str):
        reference = int(np.datetime64(window_start.replace("+00:00", ""), "ms").astype(np.int64))
    return (reference - entry_ms) / _MS_PER_DAY
