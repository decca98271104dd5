"""Parameter grids over portfolio policies (:class:`backtest.portfolio.PortfolioParams`).

A portfolio sweep (``kind = "portfolio"``) or proposal sweeps the fields of the multi-asset
lending + cross-margin perp policy instead of a single-asset policy file's:

- top-level fields: ``order`` (collateral order), ``trigger``, ``close_factor``,
  ``full_close_health_factor``, ``protocol_fee``, ``perp_keeper_share``, ``target_health``,
  ``insurance_fund_usd``;
- one asset's risk parameters: ``assets.<BASE>.<field>`` with ``<field>`` one of
  ``liquidation_threshold``, ``loan_to_value``, ``liquidation_bonus``,
  ``maintenance_margin_rate``, ``liquidation_penalty`` (e.g. ``assets.ETH.liquidation_bonus``);
  an asset without an entry in ``[portfolio.params.assets]`` starts from its default
  (:data:`backtest.portfolio.DEFAULT_ASSET_RISK`).

``chunk_size`` is not a parameter (it fixes the kernel's summation order only). A value set
by a grid is validated with the policy's own model, so ``close_factor = 2`` or a bonus with
``LT x (1 + bonus) >= 1`` is an error naming the field and the parameter set.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from backtest.errors import ConfigError
from backtest.portfolio.model import DEFAULT_ASSET_RISK, AssetRisk, PortfolioParams
from backtest.sweep.grid import GridValues, ParamSet, product_of
from backtest.validation import describe

TOP_FIELDS = tuple(n for n in PortfolioParams.model_fields if n not in ("assets", "chunk_size"))
"""Top-level portfolio policy fields a grid may set."""

ASSET_FIELDS = tuple(AssetRisk.model_fields)
"""Per-asset risk fields, set as ``assets.<BASE>.<field>``."""


def portfolio_fields() -> list[str]:
    """Return the grid fields of a portfolio policy (``<BASE>`` stands for an asset)."""
    return [*TOP_FIELDS, *(f"assets.<BASE>.{f}" for f in ASSET_FIELDS)]


def resolve_portfolio_field(name: str, where: str) -> str:
    """Return the dotted portfolio field ``name`` designates.

    Parameters
    ----------
    name : str
        ``close_factor``, ``assets.ETH.liquidation_bonus``, ...
    where : str
        Where the field is written (``grid``, ``current``, ``proposed[0].params``), named in
        the error.

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        The field does not exist (the message lists the fields that do), is ``chunk_size``,
        or is an asset field without its asset (``liquidation_bonus``: write
        ``assets.<BASE>.liquidation_bonus``).
    """
    if name in TOP_FIELDS:
        return name
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "assets" and parts[1] and parts[2] in ASSET_FIELDS:
        return name
    if name in ASSET_FIELDS or (len(parts) == 2 and parts[0] == "assets"):
        leaf = parts[-1] if parts[-1] in ASSET_FIELDS else "liquidation_bonus"
        raise ConfigError(f"field '{where}.{name}': a per-asset parameter needs its asset, "
                          f"e.g. 'assets.ETH.{leaf}'")
    raise ConfigError(f"field '{where}.{name}': the portfolio policy has no parameter '{name}'; "
                      f"its parameters are: {', '.join(portfolio_fields())}")


def apply_portfolio_params(base: PortfolioParams, params: dict[str, Any],
                           source: str = "") -> PortfolioParams:
    """Return ``base`` with dotted fields set, validated like ``[portfolio.params]``.

    Parameters
    ----------
    base : PortfolioParams
    params : dict of str to value
        Resolved dotted field -> value (:func:`resolve_portfolio_field`).
    source : str
        The sweep or proposal file, named in errors.

    Returns
    -------
    PortfolioParams

    Raises
    ------
    ConfigError
        A value out of range or a set of values the model refuses (``LT x (1 + bonus) >= 1``),
        or an asset with neither an entry in ``assets`` nor a default; the message names the
        parameter set and the field.
    """
    if not params:
        return base
    raw = base.model_dump(mode="python")
    label = ", ".join(f"{k}={v}" for k, v in params.items())
    for dotted, value in params.items():
        parts = dotted.split(".")
        if parts[0] != "assets":
            raw[dotted] = value
            continue
        asset, leaf = parts[1], parts[2]
        if asset not in raw["assets"]:
            default = DEFAULT_ASSET_RISK.get(asset)
            if default is None:
                raise ConfigError(f"parameters {label}: asset {asset} has no default risk "
                                  f"parameters; give all of assets.{asset} in "
                                  "[portfolio.params.assets]", source or None)
            raw["assets"][asset] = default.model_dump()
        raw["assets"][asset][leaf] = value
    try:
        return PortfolioParams.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"portfolio policy with {label}: {describe(exc)}",
                          source or None) from None


def expand_portfolio(grids: list[tuple[str, dict[str, GridValues]]]) -> list[ParamSet]:
    """Return the cartesian product of portfolio grids (as :func:`backtest.sweep.grid.expand`).

    Parameters
    ----------
    grids : list of (str, dict)
        ``(where, {field: values})`` pairs.

    Returns
    -------
    list of ParamSet
        ``[ParamSet()]`` when no grid has a field.

    Raises
    ------
    ConfigError
        Unknown or repeated field, or an empty list of values.
    """
    return product_of(grids, resolve_portfolio_field)


__all__ = ["ASSET_FIELDS", "TOP_FIELDS", "apply_portfolio_params", "expand_portfolio",
           "portfolio_fields", "resolve_portfolio_field"]
