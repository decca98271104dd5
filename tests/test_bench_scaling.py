"""The benchmark's thread list and scaling curve (pure arithmetic, nothing timed)."""

from __future__ import annotations

import pytest

from bench.scaling import default_threads, parse_threads, run_threads, scaling_curve


def test_default_threads_are_powers_of_two_then_the_core_count():
    assert default_threads(16) == [1, 2, 4, 8, 16]
    assert default_threads(12) == [1, 2, 4, 8, 12]
    assert default_threads(2) == [1, 2]
    assert default_threads(1) == [1]


def test_parse_threads_sorts_and_refuses_bad_counts():
    assert parse_threads("2, 1,2", limit=4) == [1, 2]
    with pytest.raises(ValueError, match="thread limit 2"):
        parse_threads("1,4", limit=2)
    with pytest.raises(ValueError, match="positive integer"):
        parse_threads("0", limit=2)
    with pytest.raises(ValueError, match="positive integer"):
        parse_threads("two", limit=2)


def test_scaling_curve_efficiency_and_ratios():
    passes = {1: {"throughput": {"engine": 10.0, "bruteforce_tile": 5.0}},
              4: {"throughput": {"engine": 30.0, "bruteforce_tile": 20.0}}}
    one, four = scaling_curve(passes)
    assert one["engine_efficiency"] == 1.0 and one["bruteforce_tile_ratio"] == 2.0
    assert four["engine_efficiency"] == 0.75  # 30 / (4 x 10)
    assert four["bruteforce_tile_efficiency"] == 1.0
    assert four["bruteforce_tile_ratio"] == 1.5
    # a list not starting at one thread is relative to its smallest count
    two, eight = scaling_curve({2: passes[1], 8: passes[4]})
    assert eight["engine_efficiency"] == 0.75


def test_run_threads_flags_results_that_change_with_the_thread_count():
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba to allow 2 threads")
    before = numba.get_num_threads()
    digests = iter(["a", "a", "a", "b"])
    workload = lambda ctx: {"digest": next(digests), "throughput": {"engine": 1.0}}  # noqa: E731
    same = run_threads(workload, None, [1, 2])["threads"]
    assert same[2]["checks"]["bit_identical_to_1_threads"] is True
    assert "checks" not in same[1]
    changed = run_threads(workload, None, [1, 2])["threads"]
    assert changed[2]["checks"]["bit_identical_to_1_threads"] is False
    assert numba.get_num_threads() == before  # restored
