"""Parameters of the options liquidation rule in sweeps and governance proposals.

The fields a sweep's ``[grid]`` or a proposal's ``current`` / ``proposed`` / ``frontier`` may
set on :class:`backtest.options.params.OptionsParams`: its own fields (``penalty_rate``,
``keeper_share``, ``spread``, ``spread_mode``, ``trigger``, ``insurance_fund_usd``,
``vol_floor``, ``rate``) and the margin's scenario grid as ``grid.<field>``
(``grid.price_range``, ``grid.contingency_rate``, ...; ``price_range`` alone is understood).
The options counterpart of :mod:`backtest.sweep.portfolio_grid`, kept free of the simulation
so that proposals can check their fields without importing it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backtest.errors import ConfigError
from backtest.options.params import OptionsParams, ScenarioGrid
from backtest.sweep.grid import ParamSet, product_of
from backtest.validation import describe

OPTIONS_FIELDS = tuple(n for n in OptionsParams.model_fields if n != "grid") + tuple(
    f"grid.{n}" for n in ScenarioGrid.model_fields)
"""Fields of the options liquidation rule a grid may set."""


def resolve_options_field(name: str, where: str) -> str:
    """Return the options rule field ``name`` designates (``price_range`` -> ``grid.price_range``).

    Raises
    ------
    ConfigError
        The field does not exist; the message lists those that do.
    """
    if name in OPTIONS_FIELDS:
        return name
    if f"grid.{name}" in OPTIONS_FIELDS:
        return f"grid.{name}"
    raise ConfigError(f"field '{where}.{name}': the options rule has no parameter '{name}'; its "
                      f"parameters are: {', '.join(OPTIONS_FIELDS)}")


def apply_options_params(base: OptionsParams, params: dict[str, Any], label: str,
                         path: str | Path) -> OptionsParams:
    """Return ``base`` with dotted options fields set (``penalty_rate``, ``grid.price_range``).

    Raises
    ------
    ConfigError
        A value the rule refuses (naming the parameter set ``label`` and the field).
    """
    raw = json.loads(json.dumps(base.model_dump(mode="python")))
    for dotted, value in params.items():
        holder = raw["grid"] if dotted.startswith("grid.") else raw
        holder[dotted.split(".")[-1]] = value
    try:
        return OptionsParams.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"options rule with {label}: {describe(exc)}", path) from None


def expand_options(grids: list[tuple[str, dict]], path: str | Path | None = None
                   ) -> list[ParamSet]:
    """Return the parameter sets of options grids (``[(where, {field: values})]``), crossed.

    Raises
    ------
    ConfigError
        An unknown or repeated field, or no values (naming ``path``).
    """
    try:
        return product_of(grids, resolve_options_field)
    except ConfigError as exc:
        raise ConfigError(exc.detail, exc.path or path) from None


__all__ = ["OPTIONS_FIELDS", "apply_options_params", "expand_options", "resolve_options_field"]
