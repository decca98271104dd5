"""The decoupled path (first-passage walks) against the time-major step loop, bit for bit.

``simulate(..., path="decoupled")`` raises unless the decoupled kernels ran, so every parity
test below proves which path it measured; ``path="time-major"`` forces the step loop.
"""

from __future__ import annotations

from dataclasses import fields

import numba
import numpy as np
import pytest

import backtest.engine.decoupled as decoupled
import backtest.engine.dispatch as dispatch
from backtest.engine.dispatch import liquidation_order, market_params, simulate
from backtest.kernels.decoupled_nb import (
    first_at_most_nb,
    first_from_start_nb,
    passage_table_nb,
    prefix_minima_nb,
)
from backtest.kernels.enums import (
    FillPrice,
    ImpactModel,
    OracleModel,
    PolicyFamily,
    StepMetric,
    TriggerPrice,
    Waterfall,
)
from backtest.kernels.reference import simulate_reference
from tests.kernel_inputs import random_book, random_mark, random_policy, random_prices

MODES = [(t, f) for t in TriggerPrice for f in FillPrice]
FAMILIES = [PolicyFamily.HARD, PolicyFamily.PARTIAL, PolicyFamily.GRADUATED]


def _differences(a, b) -> list[str]:
    """Names of the result fields whose bytes, dtype or shape differ (empty: bit-identical)."""
    out = []
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                out.append(f.name)
        elif not (x is None and y is None):
            out.append(f.name)
    return out


def _inputs(seed, family, n=500, steps=150, vol=0.01):
    rng = np.random.default_rng(seed)
    prices = random_prices(rng, steps, vol=vol)
    book = random_book(rng, n)
    policy = random_policy(rng, family)
    return rng, prices, book, policy


def _both(prices, book, policy, trigger, fill, threads=None, **kw):
    kw.setdefault("chunk_size", 64)
    before = numba.get_num_threads()
    try:
        if threads:
            numba.set_num_threads(threads)
        fast = simulate(prices, book["product"], book["units"], book["cash"], policy, trigger,
                        fill, path="decoupled", **kw)
        slow = simulate(prices, book["product"], book["units"], book["cash"], policy, trigger,
                        fill, path="time-major", block_steps=17, **kw)
    finally:
        numba.set_num_threads(before)
    return fast, slow


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("trigger", "fill"), MODES)
@pytest.mark.parametrize("seed", range(2))
def test_decoupled_equals_time_major(family, trigger, fill, seed):
    """Every field (records in order, step metrics, fund balance) bit-identical."""
    rng, prices, book, policy = _inputs(100 * seed + 7 * int(family) + 3 * int(fill), family)
    policy["waterfall"] = [Waterfall.SOCIALISE, Waterfall.SURPLUS_BUFFER][seed]
    policy["max_calls_per_step"] = [1, 8][seed]  # partial policies: keepers call again
    fast, slow = _both(prices, book, policy, trigger, fill,
                       insurance_fund_usd=float(rng.uniform(0, 30)))
    assert len(fast.records) > 0
    assert _differences(fast, slow) == []


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_decoupled_bit_identical_at_1_and_2_threads(threads, family, monkeypatch):
    """Chunks of 16 accounts: many chunks per thread, and records in many (step, chunk) groups.

    The parallel walks are forced (a book this small would otherwise walk serially).
    """
    monkeypatch.setattr(decoupled, "SERIAL_MAX_REACHABLE", -1)
    _, prices, book, policy = _inputs(40 + int(family), family, n=3000, steps=200, vol=0.02)
    fast, slow = _both(prices, book, policy, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                       threads=threads, chunk_size=16)
    assert len(fast.records) > 100
    assert _differences(fast, slow) == []
    one, _ = _both(prices, book, policy, TriggerPrice.EXTREME, FillPrice.TRIGGER, threads=1,
                   chunk_size=16)
    assert _differences(fast, one) == []


def test_decoupled_counts_waiting_accounts_like_the_step_loop():
    """Partial closes filled at the close: some liquidatable accounts are sized at 0 units and
    wait; the step loop counts them only in chunks it visits, and so does the decoupled path."""
    waited = 0
    for seed in range(6):
        rng, prices, book, policy = _inputs(300 + seed, PolicyFamily.PARTIAL, vol=0.02)
        policy["target_rate"][0, 0] = 1.2 * policy["maintenance_rate"][0, 0]
        fast, slow = _both(prices, book, policy, TriggerPrice.EXTREME, FillPrice.CLOSE)
        assert _differences(fast, slow) == []
        waited += fast.step_metrics[:, StepMetric.N_WAITING].sum()
    assert waited > 0


def test_decoupled_with_mark_price_oracle():
    rng, prices, book, policy = _inputs(11, PolicyFamily.PARTIAL)
    mark = random_mark(rng, prices)
    market = market_params(oracle_model=OracleModel.MARK)
    for trigger in TriggerPrice:
        fast, slow = _both(prices, book, policy, trigger, FillPrice.TRIGGER, market=market,
                           mark=mark)
        assert len(fast.records) > 0
        assert _differences(fast, slow) == []


def test_auto_takes_the_decoupled_path_only_when_decoupled(monkeypatch):
    taken = []
    real = dispatch.run_decoupled

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(dispatch, "run_decoupled", spy)
    _, prices, book, policy = _inputs(5, PolicyFamily.HARD)
    args = (prices, book["product"], book["units"], book["cash"], policy,
            TriggerPrice.EXTREME, FillPrice.TRIGGER)
    auto = simulate(*args)
    assert taken == [True]
    depth = np.full(len(prices), 500.0)
    coupled = market_params(ImpactModel.SQRT)
    simulate(*args, market=coupled, depth=depth)
    assert taken == [True, False]
    with pytest.raises(ValueError, match="not decoupled: market impact"):
        simulate(*args, market=coupled, depth=depth, path="decoupled")
    assert _differences(auto, simulate(*args, path="time-major")) == []
    with pytest.raises(ValueError, match="path must be one of"):
        simulate(*args, path="position-major")


def test_adl_with_perp_bad_debt_falls_back_to_the_step_loop():
    """Auto-deleveraging couples accounts: the decoupled walk declines, auto steps instead."""
    for seed in range(10):
        _, prices, book, policy = _inputs(600 + seed, PolicyFamily.HARD, vol=0.03)
        policy["waterfall"] = Waterfall.ADL
        args = (prices, book["product"], book["units"], book["cash"], policy,
                TriggerPrice.EXTREME, FillPrice.CLOSE)
        slow = simulate(*args, path="time-major")
        if slow.step_metrics[:, StepMetric.ADL_ACCOUNTS].sum() > 0:
            break
    else:
        pytest.fail("no seed with auto-deleveraging")
    with pytest.raises(ValueError, match="auto-deleveraging"):
        simulate(*args, path="decoupled")
    assert _differences(simulate(*args), slow) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_decoupled_matches_the_reference_twin(family):
    rng, prices, book, policy = _inputs(900 + int(family), family)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.LIQUIDATION_PRICE, path="decoupled")
    ref = simulate_reference(prices.open, prices.high, prices.low, prices.close,
                             TriggerPrice.EXTREME, FillPrice.LIQUIDATION_PRICE, policy[0],
                             book["product"], book["units"], book["cash"],
                             priority=liquidation_order(book["product"], book["units"],
                                                        book["cash"]))
    assert len(res.records) == len(ref.records) > 0
    np.testing.assert_allclose(res.units, ref.units, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.cash, ref.cash, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(res.n_liquidations, ref.n_liquidations)
    np.testing.assert_array_equal(res.first_step, ref.first_step)
    np.testing.assert_allclose(res.step_metrics, ref.step_metrics, rtol=1e-10, atol=1e-8)


def test_money_is_conserved_on_the_decoupled_path():
    _, prices, book, policy = _inputs(77, PolicyFamily.PARTIAL, vol=0.02)
    res = simulate(prices, book["product"], book["units"], book["cash"], policy,
                   TriggerPrice.EXTREME, FillPrice.TRIGGER, path="decoupled")
    rec = res.records
    proceeds = (rec["units_closed"] * rec["fill_price"]).sum()
    fees = rec["keeper_fee"].sum() + rec["insurance_fee"].sum()
    change = res.cash.sum() - book["cash"].sum()
    assert len(rec) > 0
    assert abs(change - (proceeds - fees + rec["bad_debt"].sum())) <= 1e-9 * abs(
        book["cash"]).sum()


def test_first_passage_search_equals_a_linear_scan():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 64, 100, 1440):
        a = rng.normal(size=n).cumsum()
        table, suffix = passage_table_nb(a)
        for _ in range(200):
            t0 = int(rng.integers(0, n + 1))
            k = float(rng.choice([rng.normal() * 3, a[rng.integers(0, n)], np.inf, -np.inf]))
            hits = np.nonzero(a[t0:] <= k)[0]
            assert first_at_most_nb(table, suffix, t0, k) == (t0 + hits[0] if len(hits) else n)
        prefix = prefix_minima_nb(a)
        assert np.array_equal(prefix, np.minimum.accumulate(a))
        for k in [*rng.normal(size=100) * 3, *a[rng.integers(0, n, 50)], np.inf, -np.inf]:
            hits = np.nonzero(a <= k)[0]  # the search from the start, exact keys included
            assert first_from_start_nb(prefix, float(k)) == (hits[0] if len(hits) else n)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fill", list(FillPrice))
def test_decoupled_with_penalty_models_and_seizure(seed, fill):
    """Euler's health discount, Aave v4's ramp, Compound's full seizure, on perps and loans."""
    rng, prices, book, policy = _inputs(50 + seed, FAMILIES[seed], vol=0.02)
    policy["penalty_model"] = seed
    policy["penalty_cap"] = rng.uniform(0.01, 0.3)
    policy["seize_all_collateral"] = seed % 2
    fast, slow = _both(prices, book, policy, TriggerPrice(seed % 2), fill, chunk_size=32,
                       insurance_fund_usd=5.0)
    assert len(fast.records) > 0
    assert _differences(fast, slow) == []


@pytest.mark.parametrize(("n", "steps"), [(0, 50), (5, 1), (333, 40)])
def test_decoupled_edge_sizes(n, steps):
    rng = np.random.default_rng(n + steps)
    prices = random_prices(rng, steps)
    book = random_book(rng, n)
    fast, slow = _both(prices, book, random_policy(rng, PolicyFamily.PARTIAL),
                       TriggerPrice.EXTREME, FillPrice.LIQUIDATION_PRICE)
    assert _differences(fast, slow) == []


def _by_limit(monkeypatch, name: str, limits: dict, prices, book, policy) -> dict:
    """Run the decoupled path on 2 threads once per ``limits`` value of ``decoupled.<name>``;
    check that the caller's thread count is restored after each run."""
    results = {}
    for label, limit in limits.items():
        monkeypatch.setattr(decoupled, name, limit)
        before = numba.get_num_threads()
        numba.set_num_threads(2)
        try:
            results[label] = simulate(prices, book["product"], book["units"], book["cash"],
                                      policy, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                                      path="decoupled", chunk_size=16)
            assert numba.get_num_threads() == 2
        finally:
            numba.set_num_threads(before)
    return results


@pytest.mark.parametrize("family", FAMILIES)
def test_small_run_on_one_thread_equals_parallel_walk(family, monkeypatch):
    """The small-run variant (both walks on one thread) gives the 2-thread walks' bytes, waits
    and partial re-liquidations included; the threshold picks by reachable accounts and the
    caller's thread count is restored."""
    _, prices, book, policy = _inputs(60 + int(family), family, n=2000, steps=180, vol=0.02)
    seen = []
    for name in ("decoupled_walk_nb", "decoupled_count_nb"):  # the first walk, either path
        kernel = getattr(decoupled, name)
        monkeypatch.setattr(decoupled, name, lambda *a, k=kernel: seen.append(
            numba.get_num_threads()) or k(*a))
    results = _by_limit(monkeypatch, "SERIAL_MAX_REACHABLE", {"parallel": -1, "small": 10**9},
                        prices, book, policy)
    assert seen == [2, 1]
    assert len(results["small"].records) > 100
    assert _differences(results["small"], results["parallel"]) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_serial_marking_and_settling_equal_parallel(family, monkeypatch):
    """On 2 threads a run under ``SERIAL_SIDES_MAX_ACCOUNTS`` marks and settles on one thread
    and walks on two; above it all three are parallel: the same bytes either way, and the
    caller's thread count is restored."""
    monkeypatch.setattr(decoupled, "SERIAL_MAX_REACHABLE", -1)
    monkeypatch.setattr(decoupled, "BUFFER_PER_ACCOUNT", {False: (64, 256), True: (1, 0)})
    _, prices, book, policy = _inputs(70 + int(family), family, n=3000, steps=200, vol=0.02)
    seen = []
    for name in ("reachable_nb", "decoupled_walk_nb", "settle_records_nb"):
        kernel = getattr(decoupled, name)
        monkeypatch.setattr(decoupled, name, lambda *a, k=kernel, m=name: seen.append(
            (m, numba.get_num_threads())) or k(*a))
    results = _by_limit(monkeypatch, "SERIAL_SIDES_MAX_ACCOUNTS",
                        {"parallel": 0, "serial": 10**9}, prices, book, policy)
    threads = [t for _, t in seen]
    assert [m for m, _ in seen] == ["reachable_nb", "decoupled_walk_nb", "settle_records_nb"] * 2
    assert threads == [2, 2, 2, 1, 2, 1]
    assert len(results["serial"].records) > 100
    assert _differences(results["serial"], results["parallel"]) == []


def _spy(monkeypatch, name: str, calls: list) -> None:
    kernel = getattr(decoupled, name)
    monkeypatch.setattr(decoupled, name, lambda *a: calls.append(name) or kernel(*a))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_one_walk_equals_two_walks(threads, family, monkeypatch):
    """The fused walk (records buffered per chunk, then compacted) and the two-walk path
    (count, then write into the counted slots) give the same bytes, at 1 and 2 threads; every
    family is given room enough for the fused walk here."""
    monkeypatch.setattr(decoupled, "SERIAL_MAX_REACHABLE", -1)
    monkeypatch.setattr(decoupled, "BUFFER_PER_ACCOUNT", {False: (64, 256), True: (1, 0)})
    _, prices, book, policy = _inputs(80 + int(family), family, n=3000, steps=200, vol=0.02)
    calls = []
    for name in ("decoupled_walk_nb", "decoupled_count_nb", "decoupled_apply_nb"):
        _spy(monkeypatch, name, calls)
    results = {}
    for fused in (True, False):
        monkeypatch.setattr(decoupled, "FUSED_WALK", fused)
        results[fused], slow = _both(prices, book, policy, TriggerPrice.EXTREME,
                                     FillPrice.TRIGGER, threads=threads, chunk_size=16)
        assert _differences(results[fused], slow) == []
    assert calls == ["decoupled_walk_nb", "decoupled_count_nb", "decoupled_apply_nb"]
    assert len(results[True].records) > 100
    assert _differences(results[True], results[False]) == []


def test_a_run_reaching_many_accounts_walks_twice(monkeypatch):
    """Above FUSED_MAX_REACHABLE reachable accounts a hard run walks twice (memory per account
    weighs more than the walk's time there); same bytes as the fused walk."""
    monkeypatch.setattr(decoupled, "SERIAL_MAX_REACHABLE", -1)
    _, prices, book, policy = _inputs(91, PolicyFamily.HARD, n=3000, steps=200, vol=0.02)
    results = {}
    for limit in (1 << 30, 0):
        calls = []
        for name in ("decoupled_walk_nb", "decoupled_count_nb", "decoupled_apply_nb"):
            _spy(monkeypatch, name, calls)
        monkeypatch.setattr(decoupled, "FUSED_MAX_REACHABLE", limit)
        results[limit], _ = _both(prices, book, policy, TriggerPrice.EXTREME,
                                  FillPrice.TRIGGER, threads=2, chunk_size=16)
        walked_once = "decoupled_walk_nb" in calls
        assert walked_once == (limit > 0) and ("decoupled_count_nb" in calls) == (limit == 0)
    assert len(results[0].records) > 100
    assert _differences(results[1 << 30], results[0]) == []


@pytest.mark.parametrize("room", [(0, 0), (1, 0)])
@pytest.mark.parametrize("family", [PolicyFamily.HARD, PolicyFamily.PARTIAL])
def test_a_chunk_outgrowing_its_buffer_falls_back_to_two_walks(room, family, monkeypatch):
    """With too little buffer room per account the fused walk stops (STATUS_OVERFLOW) and the
    run walks twice; the result is still the step loop's, bit for bit. With room for one
    record and no wait per account, a hard run fits (one event per account, no waits) and a
    partial one with re-liquidations or waits does not."""
    monkeypatch.setattr(decoupled, "SERIAL_MAX_REACHABLE", -1)
    monkeypatch.setattr(decoupled, "BUFFER_PER_ACCOUNT", {False: room, True: room})
    _, prices, book, policy = _inputs(90 + int(family), family, n=2000, steps=180, vol=0.02)
    calls = []
    for name in ("decoupled_walk_nb", "decoupled_count_nb"):
        _spy(monkeypatch, name, calls)
    fast, slow = _both(prices, book, policy, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                       threads=2, chunk_size=16)
    assert len(fast.records) > 50
    assert _differences(fast, slow) == []
    fits = room == (1, 0) and family == PolicyFamily.HARD
    assert calls == ["decoupled_walk_nb"] + ([] if fits else ["decoupled_count_nb"])
    if family == PolicyFamily.PARTIAL:
        again = np.bincount(fast.records["account"]).max() > 1
        assert again or int(fast.step_metrics[:, StepMetric.N_WAITING].sum()) > 0


def test_reachable_marks_and_initial_outputs_match_a_plain_loop():
    """The parallel marking (blocks of book rows) equals a plain loop over the trigger keys,
    counts per block, and writes every account's outputs before any event, whatever the block
    and the thread count."""
    from backtest.kernels.decoupled_fused_nb import reachable_nb
    from backtest.kernels.liquidation_nb import trigger_key_nb

    rng = np.random.default_rng(5)
    n = 1003
    book = random_book(rng, n)
    m_rate = np.array([0.01, 0.2])
    keys = np.array([trigger_key_nb(u, c, m_rate[p]) for p, u, c in
                     zip(book["product"], book["units"], book["cash"], strict=True)])
    lo_min, neg_hi_min = float(np.quantile(keys[keys > 0], 0.6)), -120.0
    expected = ((lo_min <= keys) | ((keys < 0) & (neg_hi_min <= keys))).astype(np.uint8)
    assert 0 < expected.sum() < n
    before = numba.get_num_threads()
    try:
        for threads, block in ((1, 64), (2, 64), (2, 7), (2, 5000)):
            numba.set_num_threads(threads)
            maybe = np.full(n, 9, np.uint8)
            counts = np.full(-(-n // block), -1, np.int64)
            out = decoupled._outputs(n)
            for a in out:
                a[:] = 7
            reachable_nb(book["product"], book["units"], book["cash"], m_rate, lo_min,
                         neg_hi_min, block, maybe, counts, out)
            assert np.array_equal(maybe, expected)
            assert counts.tolist() == [int(expected[j:j + block].sum())
                                       for j in range(0, n, block)]
            assert np.array_equal(out[0], book["units"]) and np.array_equal(out[1], book["cash"])
            assert [a.tolist() for a in out[2:]] == [[v] * n for v in (0, -1, -1, 0, 0, 0)]
    finally:
        numba.set_num_threads(before)


def test_lazy_buffers_are_writable_and_sized():
    a = decoupled._lazy(1000, decoupled.RECORD_DTYPE)
    assert a.shape == (1000,) and a.dtype == decoupled.RECORD_DTYPE and a.flags.writeable
    a[999]["step"] = 5
    assert a[999]["step"] == 5 and a[0]["step"] == 0  # fresh pages read as zeros
    assert decoupled._lazy(0, np.float64).shape == (0,)


@pytest.mark.parametrize(("threads", "units"),
                         [(1, 1), (1, 3), (2, 2), (2, 5), (1, "chunks"), (2, "chunks")])
def test_fused_walk_results_do_not_depend_on_how_chunks_are_dealt(threads, units, monkeypatch):
    """Chunks dealt in turn to 1, 2, 3 or 5 units, or one unit per chunk (as under TBB), on 1
    or 2 threads, every family given room: the same bytes as the step loop."""
    monkeypatch.setattr(decoupled, "_walk_units",
                        lambda n_chunks: n_chunks if units == "chunks" else units)
    monkeypatch.setattr(decoupled, "SERIAL_MAX_REACHABLE", -1)
    monkeypatch.setattr(decoupled, "BUFFER_PER_ACCOUNT", {False: (64, 256), True: (1, 0)})
    for family in FAMILIES:
        _, prices, book, policy = _inputs(30 + int(family), family, n=2500, steps=150, vol=0.02)
        fast, slow = _both(prices, book, policy, TriggerPrice.EXTREME, FillPrice.TRIGGER,
                           threads=threads, chunk_size=16)
        assert len(fast.records) > 50
        assert _differences(fast, slow) == []


@pytest.mark.parametrize("blocks", [1, 2, 3, 7, 400])
def test_settling_by_blocks_of_steps_does_not_change_a_byte(blocks, monkeypatch):
    """The records are moved and summed by blocks of steps (one per thread): any number of
    blocks, empty ones included (more blocks than steps), gives the same bytes, equal to the
    time-major path; waits are kept only in visited (chunk, step)s as before."""
    real = decoupled._step_blocks
    monkeypatch.setattr(decoupled, "_step_blocks", lambda weight, _: real(weight, blocks))
    monkeypatch.setattr(decoupled, "BUFFER_PER_ACCOUNT", {False: (64, 256), True: (1, 0)})
    for family in (PolicyFamily.HARD, PolicyFamily.PARTIAL):
        rng, prices, book, policy = _inputs(70 + int(family), family, n=1500, steps=120,
                                            vol=0.02)
        fast, slow = _both(prices, book, policy, TriggerPrice.EXTREME, FillPrice.CLOSE,
                           threads=2, chunk_size=16)
        assert len(fast.records) > 50
        assert _differences(fast, slow) == []


def test_step_blocks_cover_the_window_in_order():
    weight = np.array([1, 1, 50, 1, 1, 1, 30, 1], np.int64)
    for blocks in (1, 2, 3, 8, 20):
        edges = decoupled._step_blocks(weight, blocks)
        assert len(edges) == blocks + 1 and edges[0] == 0 and edges[-1] == len(weight)
        assert np.all(np.diff(edges) >= 0)
    assert decoupled._step_blocks(weight, 2).tolist() == [0, 3, 8]
    assert decoupled._step_blocks(np.zeros(0, np.int64), 2).tolist() == [0, 0, 0]


def test_other_families_walk_twice_by_default(monkeypatch):
    """Partial and graduated runs have no fused-walk room by default: one call of each of the
    two walks, none of the fused one; a hard run takes the fused walk alone."""
    calls = []
    for name in ("decoupled_walk_nb", "decoupled_count_nb", "decoupled_apply_nb"):
        _spy(monkeypatch, name, calls)
    for family, expected in ((PolicyFamily.PARTIAL, ["decoupled_count_nb", "decoupled_apply_nb"]),
                             (PolicyFamily.HARD, ["decoupled_walk_nb"])):
        calls.clear()
        _both(*_inputs(3, family)[1:], TriggerPrice.EXTREME, FillPrice.TRIGGER)
        assert calls == expected
