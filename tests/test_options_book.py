"""Options book: schema validation, Parquet round trip, the seeded generator, account margin."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from backtest.errors import BookError, ConfigError
from backtest.kernels.options_reference import account_state
from backtest.options import (
    OptionsBook,
    OptionsBookParams,
    OptionsParams,
    account_risk,
    generate_options_book,
    listed_expiries,
    pack_options_params,
    read_options_book,
    validate_options_book,
    write_options_book,
)

START = datetime(2022, 11, 8, tzinfo=UTC)
PRICE = {"BTC": 20_500.0, "ETH": 1_550.0}
IV = {"BTC": 0.6, "ETH": 0.75}


@pytest.fixture(scope="module")
def book():
    return generate_options_book(3000, START, PRICE, IV, seed=7)


def _legs(**overrides):
    base = {"account_id": [1, 1, 2], "underlying": ["BTC", "BTC", "ETH"],
            "option_type": ["put", "call", "call"], "strike": [18_000.0, 23_000.0, 1_600.0],
            "expiry": [datetime(2022, 11, 25, 8, tzinfo=UTC)] * 3,
            "quantity": [-1.0, -1.0, 2.0], "cash_usd": [3_000.0, 3_000.0, 0.0]}
    base.update(overrides)
    return pl.DataFrame(base)


def test_valid_book_round_trips(tmp_path, book):
    path = write_options_book(book, tmp_path / "b.parquet")
    back = read_options_book(path)
    assert back.frame.equals(book.frame)
    assert back.meta["seed"] == "7" and back.meta["kind"] == "options"
    assert back.n_accounts == 3000


@pytest.mark.parametrize("overrides, message", [
    ({"option_type": ["put", "cal", "call"]}, "row 1 .*option_type must be 'call' or 'put'"),
    ({"strike": [18_000.0, 0.0, 1_600.0]}, "row 1 .*strike must be a positive"),
    ({"quantity": [-1.0, 0.0, 2.0]}, "quantity must be a non-zero"),
    ({"cash_usd": [3_000.0, 2_000.0, 0.0]}, "cash_usd differs between legs"),
    ({"underlying": ["BTC", "ETH", "ETH"]}, "one underlying only"),
    ({"strike": [18_000.0, 18_000.0, 1_600.0], "option_type": ["put", "put", "call"]},
     "duplicated leg"),
    ({"cash_usd": [np.nan, np.nan, 0.0]}, "cash_usd must be a finite"),
    ({"underlying": ["", "", "ETH"]}, "underlying must not be empty"),
    ({"strike": ["a", "b", "c"]}, "column types"),
])
def test_bad_rows_are_named(overrides, message):
    with pytest.raises(BookError, match=message):
        validate_options_book(_legs(**overrides), "x.parquet")


def test_missing_column_and_missing_file(tmp_path):
    with pytest.raises(BookError, match="missing column.*cash_usd"):
        validate_options_book(_legs().drop("cash_usd"))
    with pytest.raises(BookError, match="file not found"):
        read_options_book(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(BookError, match="not a readable Parquet"):
        read_options_book(tmp_path / "bad.parquet")


def test_arrays_group_legs_by_account_and_share_instruments():
    book = OptionsBook(validate_options_book(_legs()), {})
    a = book.arrays(("BTC", "ETH"))
    assert a.account_id.tolist() == [1, 2]
    assert a.leg_start.tolist() == [0, 2, 3]
    assert a.inst_und.size == 3 and a.account_und.tolist() == [0, 1]
    assert a.inst_strike[a.leg_inst].tolist() == [18_000.0, 23_000.0, 1_600.0]
    assert a.inst_call[a.leg_inst].tolist() == [0, 1, 1]
    with pytest.raises(BookError, match="does not price"):
        book.arrays(("BTC",))


def test_generator_is_seeded_and_follows_its_distributions(book):
    again = generate_options_book(3000, START, PRICE, IV, seed=7)
    assert again.frame.equals(book.frame)
    other = generate_options_book(3000, START, PRICE, IV, seed=8)
    assert not other.frame.equals(book.frame)
    f = book.frame
    per_account = f.group_by("account_id").agg(pl.col("underlying").first(),
                                                (pl.col("quantity") < 0).any().alias("short"))
    assert per_account.height == 3000
    btc = (per_account["underlying"] == "BTC").mean()
    assert 0.66 < btc < 0.74
    assert 0.6 < per_account["short"].mean() < 0.8
    # listed strikes: multiples of the strike step; expiries at 08:00 UTC after the start
    btc_strikes = f.filter(pl.col("underlying") == "BTC")["strike"].to_numpy()
    assert np.all(btc_strikes % 1000 == 0)
    assert (f["expiry"].dt.hour() == 8).all() and (f["expiry"] > START).all()
    # OTM puts below and calls above the money
    puts = f.filter((pl.col("underlying") == "BTC") & (pl.col("option_type") == "put")
                    & (pl.col("quantity") < 0))
    assert (puts["strike"] <= 21_000).mean() > 0.9


def test_every_generated_account_starts_healthy(book):
    a = book.arrays(("BTC", "ETH"))
    risk = account_risk(a, [PRICE["BTC"], PRICE["ETH"]], [IV["BTC"], IV["ETH"]],
                        int(START.timestamp() * 1000))
    has_margin = risk.maintenance_margin > 0
    assert has_margin.mean() > 0.6
    assert np.all(risk.health[has_margin] >= 1.0 - 1e-12)
    assert np.all(risk.equity >= 0)
    assert np.all(risk.maintenance_margin >= 0)


def test_account_risk_matches_the_reference_valuation(book):
    a = book.arrays(("BTC", "ETH"))
    params = OptionsParams(rate=0.03)
    now = int(START.timestamp() * 1000) + 3_600_000
    risk = account_risk(a, [21_000.0, 1_500.0], [0.7, 0.9], now, params)
    rec = pack_options_params(params)
    prm = {k: rec[0][k] for k in rec.dtype.names}
    for i in np.random.default_rng(0).choice(a.n_accounts, 40, replace=False):
        legs = [(bool(a.inst_call[a.leg_inst[j]]), float(a.inst_strike[a.leg_inst[j]]),
                 int(a.inst_expiry_ms[a.leg_inst[j]]), float(a.leg_qty[j]))
                for j in range(a.leg_start[i], a.leg_start[i + 1])]
        u = a.account_und[i]
        e, m, (d, g, v) = account_state(legs, a.cash[i], [21_000.0, 1_500.0][u], [0.7, 0.9][u],
                                        now, prm, params.grid.price_shocks(),
                                        params.grid.vol_factors())
        assert risk.equity[i] == pytest.approx(e, rel=1e-10)
        assert risk.maintenance_margin[i] == pytest.approx(m, rel=1e-9, abs=1e-9)
        assert (risk.delta_usd[i], risk.gamma_usd[i], risk.vega_usd[i]) == pytest.approx(
            (d, g, v), rel=1e-9, abs=1e-9)


def test_short_put_margin_grows_into_a_crash_and_with_vol():
    book = OptionsBook(validate_options_book(_legs(
        account_id=[1], underlying=["BTC"], option_type=["put"], strike=[19_000.0],
        expiry=[datetime(2022, 12, 8, 8, tzinfo=UTC)], quantity=[-1.0], cash_usd=[5_000.0])), {})
    a = book.arrays()
    now = int(START.timestamp() * 1000)
    base = account_risk(a, [20_500.0], [0.6], now)
    lower = account_risk(a, [18_500.0], [0.6], now)
    higher_vol = account_risk(a, [20_500.0], [0.9], now)
    assert lower.maintenance_margin[0] > base.maintenance_margin[0]
    assert higher_vol.maintenance_margin[0] > base.maintenance_margin[0]
    assert lower.equity[0] < base.equity[0] and higher_vol.equity[0] < base.equity[0]
    assert base.delta_usd[0] > 0 and base.gamma_usd[0] < 0 and base.vega_usd[0] < 0
    # the contingency alone: 1% of F per short option
    flat = OptionsParams(grid={"price_steps": 1, "vol_up": 0, "vol_down": 0})
    assert account_risk(a, [20_500.0], [0.6], now, flat).maintenance_margin[0] == \
        pytest.approx(205.0)


def test_listed_expiries_follow_the_deribit_calendar():
    start = datetime(2022, 11, 8, 9, tzinfo=UTC)  # a Tuesday, after 08:00
    assert [d.day for d in listed_expiries(start, "daily", 3)] == [9, 10, 11]
    assert [d.day for d in listed_expiries(start, "weekly", 3)] == [11, 18, 25]
    assert [(d.month, d.day) for d in listed_expiries(start, "monthly", 2)] == [(11, 25),
                                                                               (12, 30)]
    assert [(d.year, d.month, d.day) for d in listed_expiries(start, "quarterly", 2)] == [
        (2022, 12, 30), (2023, 3, 31)]
    assert listed_expiries(start, "daily", 1, min_hours=30)[0].day == 10


def test_parameter_errors_name_the_field():
    with pytest.raises(ConfigError, match="spread"):
        OptionsParams.from_dict({"spread": -1})
    with pytest.raises(ConfigError, match="unknown field"):
        OptionsParams.from_dict({"sprad": 0.1})
    with pytest.raises(ConfigError, match="price_steps must be odd"):
        OptionsParams.from_dict({"grid": {"price_steps": 4}})
    with pytest.raises(ValueError, match="unknown"):
        OptionsBookParams(strategy_weights={"iron_condor": 1.0})
    with pytest.raises(BookError, match="positive price"):
        generate_options_book(10, START, {"BTC": 20_000.0}, {}, seed=1)
