"""Liquidation policies: TOML files in ``strategies/``, validated, packed for the kernels."""

from backtest.policies.load import available_policies, load_policy, pack_policy
from backtest.policies.models import (
    AuctionPolicy,
    BandsParams,
    GraduatedPolicy,
    HardPolicy,
    LoanParams,
    PartialParams,
    PartialPolicy,
    PerpParams,
    Policy,
    SoftBandsPolicy,
)

__all__ = [
    "AuctionPolicy",
    "BandsParams",
    "GraduatedPolicy",
    "HardPolicy",
    "LoanParams",
    "PartialParams",
    "PartialPolicy",
    "PerpParams",
    "Policy",
    "SoftBandsPolicy",
    "available_policies",
    "load_policy",
    "pack_policy",
]
