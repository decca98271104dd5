"""Load policy files by name or path, and pack them into the kernels' parameter record."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from backtest import paths
from backtest.errors import ConfigError
from backtest.kernels.enums import (
    POLICY_DTYPE,
    AdlRanking,
    AuctionCurve,
    PenaltyModel,
    PolicyFamily,
    Product,
    Waterfall,
)
from backtest.policies.models import (
    AuctionPolicy,
    GraduatedPolicy,
    HardPolicy,
    PartialPolicy,
    Policy,
    SoftBandsPolicy,
)
from backtest.validation import describe, read_toml

_FAMILIES = {"hard": HardPolicy, "partial": PartialPolicy, "graduated": GraduatedPolicy,
             "auction": AuctionPolicy, "soft_bands": SoftBandsPolicy}


def available_policies(strategies: str | Path | None = None) -> list[str]:
    """Return the names of the policy files in the strategies directory, sorted."""
    root = paths.strategies_dir(strategies)
    return sorted(p.stem for p in root.glob("*.toml"))


def load_policy(name_or_path: str | Path, strategies: str | Path | None = None) -> Policy:
    """Load and validate one policy.

    Parameters
    ----------
    name_or_path : str or Path
        A file path, or the name of a file ``<strategies>/<name>.toml``.
    strategies : str or Path, optional
        Directory to look names up in (default :func:`backtest.paths.strategies_dir`).

    Returns
    -------
    HardPolicy or PartialPolicy

    Raises
    ------
    ConfigError
        Unknown policy name (the message lists the available ones), unreadable TOML, an
        unknown family, a misspelled or missing field, or a value out of range; the message
        names the file and the field.
    """
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        root = paths.strategies_dir(strategies)
        path = root / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(available_policies(strategies)) or "none"
            raise ConfigError(f"unknown policy '{name_or_path}' (available in {root}: {known})")
    raw = read_toml(path)
    family = raw.get("family")
    if family not in _FAMILIES:
        raise ConfigError(
            f"field 'family': unknown policy family {family!r} (expected one of "
            f"{', '.join(_FAMILIES)})",
            path,
        )
    try:
        return _FAMILIES[family].model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc), path) from None


def pack_policy(policy: Policy, interval_seconds: int = 60) -> np.ndarray:
    """Pack a validated policy into the kernels' parameter record.

    Loans are mapped onto the common trigger ``equity < m x |units| x price`` with
    ``m = 1 - liquidation_threshold`` and penalty ``bonus / (1 + bonus)`` of the seized value;
    a loan target health factor ``H`` is the requirement ``1 - LT / H``; a perp target health
    ``H`` (equity / maintenance margin) is the requirement ``H x maintenance_margin_rate``.

    Parameters
    ----------
    policy : HardPolicy, PartialPolicy or GraduatedPolicy
    interval_seconds : int
        Step length of the tape, to turn the cooldown (minutes) into whole steps.

    Returns
    -------
    ndarray, shape (1,), dtype ``POLICY_DTYPE``
    """
    rec = np.zeros(1, POLICY_DTYPE)
    perp, loan = policy.perp, policy.loan
    rec["keeper_share"] = policy.keeper_share
    if isinstance(policy, SoftBandsPolicy):  # the bands' liquidation_discount is the threshold
        m_loan, pen_loan = policy.bands.liquidation_discount, 0.0
    else:
        m_loan = 1.0 - loan.liquidation_threshold
        pen_loan = loan.liquidation_bonus / (1.0 + loan.liquidation_bonus)
    m = {Product.PERP: perp.maintenance_margin_rate, Product.LOAN: m_loan}
    pen = {Product.PERP: perp.liquidation_penalty, Product.LOAN: pen_loan}
    target = {Product.PERP: np.inf, Product.LOAN: np.inf}
    if isinstance(policy, PartialPolicy):
        rec["family"] = PolicyFamily.PARTIAL
        rec["close_factor"] = policy.partial.close_factor
        rec["full_close_health"] = policy.partial.full_close_health
        rec["full_close_below_usd"] = policy.partial.full_close_below_usd
        rec["large_position_usd"] = policy.partial.large_position_usd
        rec["large_position_fraction"] = policy.partial.large_position_fraction
        rec["min_remaining_usd"] = policy.partial.min_remaining_usd
        rec["max_calls_per_step"] = policy.partial.max_calls_per_step
        if policy.partial.target_health is not None:
            target[Product.PERP] = policy.partial.target_health * perp.maintenance_margin_rate
        if policy.partial.target_health_factor is not None:
            hf = policy.partial.target_health_factor
            target[Product.LOAN] = 1.0 - loan.liquidation_threshold / hf
    elif isinstance(policy, GraduatedPolicy):
        rec["family"] = PolicyFamily.GRADUATED
        tiers = policy.graduated.tiers
        rec["tier_health"][0, : len(tiers)] = [h for h, _ in tiers]
        rec["tier_fraction"][0, : len(tiers)] = [f for _, f in tiers]
    else:
        rec["family"] = PolicyFamily.HARD
        rec["close_factor"] = 1.0
        rec["full_close_health"] = 1.0
    if isinstance(policy, AuctionPolicy):
        _pack_auction(rec, policy.auction, interval_seconds)
    if isinstance(policy, SoftBandsPolicy):
        rec["family"] = PolicyFamily.SOFT_BANDS
        rec["band_ratio"] = (policy.bands.A - 1) / policy.bands.A
        rec["band_count"] = policy.bands.n_bands
        rec["band_loan_discount"] = policy.bands.loan_discount
    cap = policy.slicing.max_step_volume_fraction
    rec["max_step_volume_fraction"] = 0.0 if cap is None else cap
    minutes = policy.slicing.cooldown_minutes
    rec["cooldown_steps"] = 0 if minutes == 0 else math.ceil(minutes * 60 / interval_seconds)
    rec["penalty_model"] = PenaltyModel[policy.penalty.model.upper()]
    rec["penalty_cap"] = policy.penalty.max_discount
    if policy.penalty.model == "health_ramp":  # Aave v4: bonuses as penalties b / (1 + b)
        ramp = policy.penalty
        low = ramp.max_bonus * ramp.bonus_factor
        pen[Product.LOAN] = low / (1.0 + low)
        rec["penalty_cap"] = ramp.max_bonus / (1.0 + ramp.max_bonus)
        rec["full_close_health"] = ramp.health_for_max_bonus
    rec["seize_all_collateral"] = int(loan is not None and loan.seize_all_collateral)
    if policy.predictive is not None:
        rec["preempt_fraction"] = policy.predictive.reduce_fraction
        rec["preempt_penalty"] = policy.predictive.fee
    rec["waterfall"] = Waterfall[policy.waterfall.mode.upper()]
    rec["adl_ranking"] = AdlRanking[policy.waterfall.adl_ranking.upper()]
    for prod in Product:
        rec["maintenance_rate"][0, prod] = m[prod]
        rec["penalty_rate"][0, prod] = pen[prod]
        rec["target_rate"][0, prod] = target[prod]
    return rec


def _pack_auction(rec: np.ndarray, auction, interval_seconds: int) -> None:
    """Pack ``[auction]``: minutes become (fractional) steps, ``cut`` per stair or per step."""
    steps = 60.0 / interval_seconds
    rec["family"] = PolicyFamily.AUCTION
    rec["auction_curve"] = AuctionCurve[auction.curve.upper()]
    rec["auction_buf"] = auction.buf
    rec["auction_tau_steps"] = auction.tau_minutes * steps
    rec["auction_step_steps"] = auction.step_minutes * steps
    rec["auction_tail_steps"] = auction.tail_minutes * steps
    # exponential: the per-stair cut applied continuously, per step
    rec["auction_cut"] = (auction.cut ** (1.0 / (auction.step_minutes * steps))
                          if auction.curve == "exponential" else auction.cut)
    rec["auction_cusp"] = auction.cusp
    rec["auction_chip"] = auction.chip
    rec["auction_tip_usd"] = auction.tip_usd
    rec["auction_keeper_margin"] = auction.keeper_margin
    rec["auction_keeper_rational"] = int(auction.keeper_rational)
    rec["auction_chost_usd"] = auction.chost_usd
    rec["auction_zero_bid_steps"] = auction.zero_bid_minutes * steps
