"""Borrower response on Maker vaults: the Morpho-fitted cures mapped to ETH-A, and top-ups that
wait for transactions to be included (configs/black-thursday-*.toml, docs/calibration.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.engine.book_flow import BookFlow, Response
from backtest.engine.config import ResponseConfig, load_run_config
from backtest.engine.dispatch import Prices, simulate
from backtest.engine.run import response_for
from backtest.errors import ConfigError
from backtest.kernels.enums import FillPrice, TriggerPrice
from backtest.kernels.reference import simulate_reference
from backtest.policies.load import load_policy, pack_policy

ROOT = Path(__file__).resolve().parent.parent
LT = 0.6667  # ETH-A: liquidation ratio 150%


def _vaults(delay: int, top_up: bool = False):
    """Two vaults, 10 ETH against 600 of debt (health 1.111 at 100); ETH falls to 95 (health
    1.056: inside the warning zone, above liquidation) and stays there. Vault 0 responds."""
    steps = 12
    close = np.r_[100.0, np.full(steps - 1, 95.0)]
    prices = Prices(close.copy(), close.copy(), close.copy(), close.copy())
    product = np.array([1, 1], np.int8)
    units, cash = np.array([10.0, 10.0]), np.array([-600.0, -600.0])
    flow = BookFlow(np.array([-1, -1], np.int64), units.copy(), cash.copy(), np.zeros(2),
                    np.array([True, False]), Response(0.7, (8.0, 1.075), (20.0, 1.16), delay,
                                                                loan_top_up=top_up))
    policy = pack_policy(load_policy("maker-eth-a"), interval_seconds=300)
    res = simulate(prices, product, units, cash, policy, TriggerPrice.EXTREME,
                   FillPrice.TRIGGER, flow=flow)
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.TRIGGER, policy[0], product, units,
                             cash, flow=flow)
    return res, ref


def test_a_vault_in_the_warning_zone_repays_to_the_target_after_the_delay():
    res, ref = _vaults(delay=3)
    # warned at the close of step 1, cured at the start of step 1 + 3 + 1 = 5, at 95
    cures = res.book_flow[:, 7]  # FLOW_FIELDS "cures"
    assert np.nonzero(cures)[0].tolist() == [5]
    debt = LT * 10.0 * 95.0 / 1.16  # health LT x collateral / debt = 1.16
    assert -res.cash[0] == pytest.approx(debt, rel=1e-4)
    assert res.deposited[0] == pytest.approx(600.0 - debt, rel=1e-4)  # new money repays debt
    assert res.units[0] == 10.0  # a top-up repays debt; the collateral stays
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-12)


def test_a_vault_that_tops_up_adds_eth_and_keeps_its_debt():
    """Maker's owners added ETH (``loan_cure = "top_up"``): the same health, 1.16, reached by
    collateral worth 1.16 x debt / LT at 95, bought with new money; the kernel and its twin
    agree."""
    res, ref = _vaults(delay=3, top_up=True)
    assert np.nonzero(res.book_flow[:, 7])[0].tolist() == [5]
    units = 1.16 * 600.0 / LT / 95.0
    assert res.cash[0] == -600.0 and res.units[0] == pytest.approx(units, rel=1e-12)
    assert res.topped_up[0] == pytest.approx(units - 10.0, rel=1e-12)
    assert res.deposited[0] == pytest.approx((units - 10.0) * 95.0, rel=1e-12)
    repaid, _ = _vaults(delay=3)
    assert res.deposited[0] > repaid.deposited[0]  # more money than repaying to 1.16
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-12)
    np.testing.assert_allclose(res.topped_up, ref.topped_up, rtol=1e-12)


def test_a_non_responder_does_not_repay():
    res, _ = _vaults(delay=3)
    assert res.cash[1] == -600.0 and res.deposited[1] == 0.0


def test_a_cure_waits_the_whole_delay():
    res, _ = _vaults(delay=20)  # longer than the window: no cure at all
    assert res.book_flow[:, 7].sum() == 0 and res.cash[0] == -600.0


def test_top_ups_wait_for_inclusion_when_asked():
    cfg = ResponseConfig(enabled=True, delay_minutes=120, wait_for_inclusion=True)
    assert response_for(cfg, 300, inclusion_minutes=30).delay_steps == 30  # (120 + 30) / 5
    plain = ResponseConfig(enabled=True, delay_minutes=120)
    assert response_for(plain, 300, inclusion_minutes=30).delay_steps == 24
    assert response_for(ResponseConfig(enabled=False), 300) is None


def test_morpho_levels_map_to_eth_a_collateralisation():
    """Health 1.075 and 1.16 (86/80 and 86/74) are 161% and 174% collateralisation at 150%."""
    cfg = ResponseConfig()
    assert 1.5 * cfg.warning_health == pytest.approx(1.6125)
    assert 1.5 * cfg.target_health == pytest.approx(1.74)
    assert cfg.share == 0.7 and cfg.delay_minutes == 120.0


def test_black_thursday_runs_carry_the_response():
    """The instant scenario carries the Morpho simulator's response; the congested one the
    response fitted to the owners' morning top-ups (its ``fitted_to``)."""
    instant = load_run_config(ROOT / "configs/black-thursday-instant.toml")
    congested = load_run_config(ROOT / "configs/black-thursday-congested.toml")
    for cfg in (instant, congested):
        assert cfg.response.enabled and cfg.response.warning_health == 1.075
        assert cfg.response.loan_cure == "top_up"  # Maker's owners added ETH
        assert "maker-flip" in cfg.policies
    assert (instant.response.share, instant.response.target_health) == (0.7, 1.16)
    assert not instant.response.fitted_to and not instant.response.wait_for_inclusion
    assert congested.response.fitted_to == ["black-thursday-2020/maker-eth-topups-morning"]
    assert congested.response.wait_for_inclusion and congested.keepers.latency_minutes == 30


def test_the_conditioned_ensemble_is_the_congested_scenario_conditioned_on_top_ups():
    """``configs/black-thursday-conditioned-ensemble.toml`` is the congested run with the
    Morpho simulator's response as the prior, plus the ensemble that draws the cure's size and
    is conditioned on the morning's top-ups, decided by the auction Maker ran in 2020; the
    congested run's response values (the kept members' medians) lie inside what it draws
    (``docs/calibration.md``)."""
    from backtest.engine.config import read_run_config
    from backtest.sweep.ensemble import EnsembleSpec

    cfg, raw = read_run_config(ROOT / "configs/black-thursday-conditioned-ensemble.toml")
    congested = load_run_config(ROOT / "configs/black-thursday-congested.toml")
    fitted = {"share", "delay_minutes", "target_health", "fitted_to"}
    assert cfg.model_dump(exclude={"name", "description", "response"}) == congested.model_dump(
        exclude={"name", "description", "response"})
    assert cfg.response.model_dump(exclude=fitted) == congested.response.model_dump(
        exclude=fitted)
    assert (cfg.response.share, cfg.response.target_health) == (0.7, 1.16)
    spec = EnsembleSpec.model_validate(raw)
    assert spec.condition_on == ["maker-eth-topups-morning"]
    assert [f"black-thursday-2020/{t}" for t in spec.condition_on] == \
        congested.response.fitted_to
    assert spec.condition_policy == "maker-flip" and spec.condition_policy in cfg.policies
    d = spec.response_target_health
    assert (d.low, d.high) == (1.16, 2.41) and d.low == cfg.response.target_health
    assert d.low < congested.response.target_health < d.high
    delay = spec.response_delay_minutes
    assert delay.low < congested.response.delay_minutes < delay.high


@pytest.mark.parametrize(("fields", "message"), [
    ({"warning_health": 1.2, "target_health": 1.1}, "target_health must be above"),
    ({"share": 1.5}, "share"),
    ({"delay_minutes": -1}, "delay_minutes"),
    ({"wait_for_inclusions": True}, "wait_for_inclusions"),
    ({"loan_cure": '"deposit"'}, "loan_cure"),
])
def test_bad_response_sections_are_refused(tmp_path, fields, message):
    text = (ROOT / "configs/black-thursday-congested.toml").read_text()
    extra = "".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                    for k, v in fields.items())
    for k in fields:  # drop the lines the case replaces
        text = "\n".join(line for line in text.splitlines()
                         if not line.startswith(f"{k} ")) + "\n"
    text = text.replace("[response]\n", "[response]\n" + extra)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_run_config(path)


def test_overriding_a_fitted_response_value_drops_its_fit_label():
    """``--set response.share=0.7`` on the congested run undoes what ``fitted_to`` vouches
    for, so the top-ups are no longer "in fit"; the seed or the switch keep the label, and an
    explicit ``fitted_to`` wins."""
    path = ROOT / "configs/black-thursday-congested.toml"
    fitted = load_run_config(path).response.fitted_to
    assert fitted == ["black-thursday-2020/maker-eth-topups-morning"]
    assert load_run_config(path, ["response.share=0.7"]).response.fitted_to == []
    assert load_run_config(path, ["response.delay_minutes=120"]).response.fitted_to == []
    assert load_run_config(path, ["response.seed=3"]).response.fitted_to == fitted
    assert load_run_config(path, ["keepers.latency_minutes=15"]).response.fitted_to == fitted
    assert load_run_config(path, ["response.share=0.7", 'response.fitted_to=["a/b"]']
                           ).response.fitted_to == ["a/b"]
