"""Parameter grids over policy fields: validation, expansion and application to a policy.

A grid maps dotted policy fields (``partial.close_factor``, ``perp.liquidation_penalty``,
``slicing.max_step_volume_fraction``) to a list of values or a range. A field may also be
given by its last part alone (``close_factor``) when exactly one field of the policy's model
has that name. Expanding a grid gives the cartesian product of its fields' values, in the
order the fields are written, each a :class:`ParamSet`.
"""

from __future__ import annotations

import itertools
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from backtest.errors import ConfigError
from backtest.strict import StrictModel
from backtest.validation import describe

#: Policy fields a grid may not change: they identify the policy, they are not parameters.
FIXED_FIELDS = frozenset({"name", "family", "description", "source"})


class Range(StrictModel):
    """An inclusive range of grid values: ``start`` to ``stop`` in ``num`` points or by ``step``.

    Attributes
    ----------
    start, stop : float
        First and last value (``stop`` is included when the steps reach it).
    num : int or None
        Number of evenly spaced points (>= 1; 1 gives ``[start]``).
    step : float or None
        Spacing (> 0); values ``start, start + step, ...`` up to ``stop`` (with a tolerance
        of 1e-9 steps).
    """

    start: float
    stop: float
    num: int | None = Field(default=None, ge=1)
    step: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _one_of(self) -> Range:
        if (self.num is None) == (self.step is None):
            raise ValueError("give exactly one of 'num' and 'step'")
        if self.stop < self.start:
            raise ValueError("'stop' must not be below 'start'")
        return self

    def values(self) -> list[float]:
        """Return the range's values, rounded to 12 significant digits (no 0.30000000000000004).

        Returns
        -------
        list of float
        """
        if self.num is not None:
            if self.num == 1:
                raw = [self.start]
            else:
                width = (self.stop - self.start) / (self.num - 1)
                raw = [self.start + i * width for i in range(self.num)]
        else:
            count = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
            raw = [self.start + i * self.step for i in range(count)]
        return [float(f"{v:.12g}") for v in raw]


GridValues = Range | list[Any]
"""Grid entry: a list of values or a :class:`Range`."""


@dataclass(frozen=True)
class ParamSet:
    """One point of a parameter grid.

    Attributes
    ----------
    params : dict of str to value
        Dotted policy field -> value, in grid order; empty for the policy as written.
    name : str or None
        An explicit name (governance proposals: ``current``, a proposal's name); None derives
        the label from the values.
    """

    params: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def label(self) -> str:
        """Readable label: the name, else ``field=value, ...``, else ``as written``."""
        if self.name is not None:
            return self.name
        if not self.params:
            return "as written"
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())

    def to_json(self) -> str:
        """Return the parameters as canonical JSON (sorted keys), for hashing and tables."""
        return json.dumps(self.params, sort_keys=True, default=str)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model inside an annotation (``X``, ``X | None``, ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def policy_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Return every dotted leaf field of a policy model, in declaration order.

    Parameters
    ----------
    model : type of pydantic.BaseModel
        A policy class (:class:`backtest.policies.models.PartialPolicy`, ...).
    prefix : str
        Prefix for nested sections (internal).

    Returns
    -------
    list of str
        E.g. ``["keeper_share", "perp.maintenance_margin_rate", ...]``.
    """
    out = []
    for name, info in model.model_fields.items():
        sub = _model_of(info.annotation)
        if sub is not None:
            out.extend(policy_fields(sub, f"{prefix}{name}."))
        elif f"{prefix}{name}" not in FIXED_FIELDS:
            out.append(f"{prefix}{name}")
    return out


def resolve_field(model: type[BaseModel], name: str, policy: str, where: str) -> str:
    """Return the dotted field ``name`` designates in ``model``.

    Parameters
    ----------
    model : type of pydantic.BaseModel
        The policy's class.
    name : str
        A dotted field (``partial.close_factor``) or a unique last part (``close_factor``).
    policy : str
        Policy name, for the error message.
    where : str
        Where the grid is (``grid``, ``policy_grids.partial``), for the error message.

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        If the field does not exist in the model (the message lists the fields that do), is
        ambiguous, or identifies the policy (``name``, ``family``, ...).
    """
    fields = policy_fields(model)
    if name in fields:
        return name
    matches = [f for f in fields if f.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    family = model.model_fields["family"].annotation
    family = typing.get_args(family)[0] if typing.get_args(family) else family
    if len(matches) > 1:
        raise ConfigError(f"field '{where}.{name}': ambiguous for policy '{policy}', write one "
                          f"of {', '.join(matches)}")
    raise ConfigError(f"field '{where}.{name}': policy '{policy}' (family {family}) has no "
                      f"parameter '{name}'; its parameters are: {', '.join(fields)}")


def grid_values(values: GridValues) -> list[Any]:
    """Return the values of one grid entry (a list as given, or a range expanded)."""
    return values.values() if isinstance(values, Range) else list(values)


def expand(grids: list[tuple[str, dict[str, GridValues]]], model: type[BaseModel],
           policy: str) -> list[ParamSet]:
    """Return the cartesian product of grids for one policy.

    Parameters
    ----------
    grids : list of (str, dict)
        ``(where, {field: values})`` pairs, e.g. ``[("grid", {...}), ("policy_grids.partial",
        {...})]``; later grids may not repeat a field of an earlier one.
    model : type of pydantic.BaseModel
        The policy's class, to check every field exists.
    policy : str
        Policy name (error messages).

    Returns
    -------
    list of ParamSet
        ``[ParamSet()]`` when no grid has a field.

    Raises
    ------
    ConfigError
        Unknown, ambiguous, fixed or repeated field, or an empty list of values.
    """
    return product_of(grids, lambda name, where: resolve_field(model, name, policy, where))


def product_of(grids: list[tuple[str, dict[str, GridValues]]],
               resolve: Callable[[str, str], str]) -> list[ParamSet]:
    """Return the cartesian product of grids.

    ``resolve(name, where)`` turns the grids' field names into dotted fields (raising
    :class:`ConfigError` for an unknown one).

    Raises
    ------
    ConfigError
        A field swept twice, or an empty list of values.
    """
    axes: list[tuple[str, list[Any]]] = []
    for where, grid in grids:
        for name, values in grid.items():
            dotted = resolve(name, where)
            if any(dotted == a for a, _ in axes):
                raise ConfigError(f"field '{where}.{name}': '{dotted}' is already swept")
            vals = grid_values(values)
            if not vals:
                raise ConfigError(f"field '{where}.{name}': no values")
            axes.append((dotted, vals))
    if not axes:
        return [ParamSet()]
    names = [a for a, _ in axes]
    return [ParamSet(dict(zip(names, combo, strict=True)))
            for combo in itertools.product(*(v for _, v in axes))]


def apply_params(policy: BaseModel, params: dict[str, Any], source: str = "") -> BaseModel:
    """Return a copy of ``policy`` with dotted fields set, validated like a policy file.

    Parameters
    ----------
    policy : HardPolicy, PartialPolicy or GraduatedPolicy
    params : dict of str to value
        Dotted field -> value (fields resolved by :func:`resolve_field`).
    source : str
        Where the values come from (a sweep or proposal file), named in errors.

    Returns
    -------
    pydantic.BaseModel
        A validated policy of the same class.

    Raises
    ------
    ConfigError
        If a value is out of range or makes the policy invalid; the message names the
        policy, the parameter set and pydantic's field message.
    """
    if not params:
        return policy
    raw = policy.model_dump(mode="python")
    for dotted, value in params.items():
        holder = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            if holder.get(part) is None:
                holder[part] = {}
            holder = holder[part]
        holder[parts[-1]] = value
    try:
        return type(policy).model_validate(raw)
    except ValidationError as exc:
        label = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        raise ConfigError(f"policy '{policy.name}' with {label}: {describe(exc)}",
                          source or None) from None
