"""Liquidation policies: TOML files in ``strategies/``, validated, packed for the kernels."""

from backtest.policies.load import available_policies, load_policy, pack_policy
from backtest.policies.models import (
    AuctionPolicy,
    GraduatedPolicy,
    HardPolicy,
    LoanParams,
    PartialParams,
    PartialPolicy,
    PerpParams,
    Policy,
)

__all__ = [
    "AuctionPolicy",
    "GraduatedPolicy",
    "HardPolicy",
    "LoanParams",
    "PartialParams",
    "PartialPolicy",
    "PerpParams",
    "Policy",
    "available_policies",
    "load_policy",
    "pack_policy",
]
