"""The strict pydantic base class of every configuration and parameter model.

Configurations (run, portfolio run, governance proposal), policy and book parameters are read
from TOML files people write by hand: a misspelt key must be an error naming the key, not a
silently ignored default, and a loaded configuration must not change under the run that uses
it. Every such model derives from :class:`StrictModel`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Pydantic model that rejects unknown fields and is immutable once built.

    ``extra="forbid"``: an unknown key raises :class:`pydantic.ValidationError` naming it.
    ``frozen=True``: assigning a field raises :class:`pydantic.ValidationError`; derive a changed
    copy with ``model_copy(update=...)`` instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


__all__ = ["StrictModel"]
