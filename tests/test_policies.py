"""Policy files: every shipped strategy validates; bad fields are named; packing is faithful."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.errors import ConfigError
from backtest.kernels.enums import AdlRanking, PenaltyModel, PolicyFamily, Product, Waterfall
from backtest.policies import available_policies, load_policy, pack_policy

STRATEGIES = Path(__file__).resolve().parent.parent / "strategies"


@pytest.mark.parametrize("name", available_policies(STRATEGIES))
def test_every_shipped_strategy_loads_and_packs(name):
    policy = load_policy(name, STRATEGIES)
    rec = pack_policy(policy)[0]
    assert policy.name == name
    assert 0 < rec["maintenance_rate"][Product.PERP] < 1
    loan_rate = (policy.bands.liquidation_discount if policy.family == "soft_bands"
                 else 1 - policy.loan.liquidation_threshold)
    assert rec["maintenance_rate"][Product.LOAN] == pytest.approx(loan_rate)


def test_presets_pack_their_protocol_rules():
    aave = pack_policy(load_policy("aave-v3.3", STRATEGIES))[0]
    assert aave["family"] == PolicyFamily.PARTIAL and aave["close_factor"] == 0.5
    assert aave["full_close_below_usd"] == 2000 and aave["min_remaining_usd"] == 1000
    assert aave["penalty_rate"][Product.LOAN] == pytest.approx(0.05 / 1.05)
    hl = pack_policy(load_policy("hyperliquid", STRATEGIES), interval_seconds=60)[0]
    assert hl["maintenance_rate"][Product.PERP] == pytest.approx(1 / 80)
    assert hl["large_position_usd"] == 100_000 and hl["large_position_fraction"] == 0.2
    assert hl["cooldown_steps"] == 1  # 30 s rounds up to one 1-minute step
    assert hl["waterfall"] == Waterfall.ADL and hl["adl_ranking"] == AdlRanking.HYPERLIQUID
    clip = pack_policy(load_policy("maker-clipper", STRATEGIES))[0]
    assert clip["auction_chost_usd"] == pytest.approx(2000 * 1.13)  # dust x chop
    grad = pack_policy(load_policy("graduated-sliced", STRATEGIES))[0]
    np.testing.assert_allclose(grad["tier_health"][:3], [1.0, 0.8, 0.6])
    assert grad["max_step_volume_fraction"] == 0.05


@pytest.mark.parametrize(("edit", "needle"), [
    (("family = \"partial\"", "family = \"soft\""), "unknown policy family 'soft'"),
    (("[partial]", "[partial]\nclose_factr = 0.5"), "partial.close_factr"),
    (("close_factor = 0.5", "close_factor = 1.5"), "partial.close_factor"),
    (("liquidation_bonus = 0.05", "liquidation_bonus = 0.5"), "liquidation_threshold x (1 + "),
])
def test_bad_policy_files_name_the_field(tmp_path, edit, needle):
    text = (STRATEGIES / "aave-v3.3.toml").read_text().replace(*edit)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert "bad.toml" in str(err.value) and needle in str(err.value)


def test_graduated_tiers_must_be_ordered(tmp_path):
    text = (STRATEGIES / "graduated-sliced.toml").read_text().replace(
        "[[1.0, 0.25], [0.8, 0.5], [0.6, 1.0]]", "[[1.0, 0.5], [0.9, 0.25]]")
    path = tmp_path / "g.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="tier fractions must be"):
        load_policy(path)


def test_lending_presets_pack_their_rules():
    compound = pack_policy(load_policy("compound-v3", STRATEGIES))[0]
    assert compound["family"] == PolicyFamily.HARD and compound["seize_all_collateral"] == 1
    assert compound["penalty_rate"][Product.LOAN] == pytest.approx(0.05)  # 1 - liquidationFactor
    assert compound["maintenance_rate"][Product.LOAN] == pytest.approx(1 - 0.895)
    euler = pack_policy(load_policy("euler-v2", STRATEGIES))[0]
    assert euler["penalty_model"] == PenaltyModel.HEALTH_DISCOUNT and euler["penalty_cap"] == 0.2
    liquity = pack_policy(load_policy("liquity-v2", STRATEGIES))[0]
    assert 1 / (1 - liquity["maintenance_rate"][Product.LOAN]) == pytest.approx(1.1)  # MCR
    aave30 = pack_policy(load_policy("aave-v3", STRATEGIES))[0]
    assert aave30["close_factor"] == 0.5 and aave30["full_close_health"] == 0.95
    assert aave30["full_close_below_usd"] == 0 and aave30["min_remaining_usd"] == 0


def test_perp_presets_pack_their_rules():
    dydx = pack_policy(load_policy("dydx-v4", STRATEGIES))[0]
    assert dydx["maintenance_rate"][Product.PERP] == pytest.approx(0.05 * 0.6)
    assert dydx["adl_ranking"] == AdlRanking.DYDX and dydx["keeper_share"] == 0
    drift = pack_policy(load_policy("drift", STRATEGIES))[0]
    # the 2% buffer over a 5% maintenance margin: target requirement 7% of notional
    assert drift["target_rate"][Product.PERP] == pytest.approx(0.07)
    assert pack_policy(load_policy("binance-usdtm", STRATEGIES))[0]["adl_ranking"] == (
        AdlRanking.BINANCE)
    assert pack_policy(load_policy("bitmex", STRATEGIES))[0]["adl_ranking"] == AdlRanking.BITMEX


def test_variants_pack_their_overlays():
    predictive = load_policy("predictive", STRATEGIES)
    rec = pack_policy(predictive)[0]
    assert rec["preempt_fraction"] == 0.25 and rec["preempt_penalty"] == 0.002
    assert rec["cooldown_steps"] == 5
    dynamic = load_policy("dynamic-margin", STRATEGIES)
    assert dynamic.dynamic_margin.cap == 4.0
    assert pack_policy(dynamic)[0]["preempt_fraction"] == 0.0


def test_maker_clipper_packs_its_auction():
    rec = pack_policy(load_policy("maker-clipper", STRATEGIES), interval_seconds=300)[0]
    assert rec["family"] == PolicyFamily.AUCTION
    assert rec["auction_buf"] == 1.3 and rec["auction_cut"] == 0.99
    assert rec["auction_step_steps"] == pytest.approx(0.3)  # 90 s stairs on 5-minute steps
    assert rec["auction_tail_steps"] == pytest.approx(28.0)  # 140 minutes
    assert rec["penalty_rate"][Product.LOAN] == pytest.approx(0.13 / 1.13)  # chop 1.13


def test_exponential_auction_cut_is_per_step(tmp_path):
    text = (STRATEGIES / "maker-clipper.toml").read_text().replace(
        'curve = "stairstep"', 'curve = "exponential"')
    path = tmp_path / "exp.toml"
    path.write_text(text)
    rec = pack_policy(load_policy(str(path)), interval_seconds=60)[0]
    # 1% every 90 s is 0.99 ** (60 / 90) per one-minute step
    assert rec["auction_cut"] == pytest.approx(0.99 ** (60 / 90))


def test_maker_presets_queue_bad_debt_in_the_surplus_buffer_with_rational_keepers():
    for name in ("maker-eth-a", "maker-clipper"):
        rec = pack_policy(load_policy(name, STRATEGIES))[0]
        assert rec["waterfall"] == Waterfall.SURPLUS_BUFFER
    clip = pack_policy(load_policy("maker-clipper", STRATEGIES))[0]
    assert clip["auction_keeper_rational"] == 1
    # keeper_rational defaults to true and can be turned off
    policy = load_policy("maker-clipper", STRATEGIES)
    naive = policy.model_copy(update={"auction": policy.auction.model_copy(
        update={"keeper_rational": False})})
    assert pack_policy(naive)[0]["auction_keeper_rational"] == 0
