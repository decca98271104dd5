"""The paired load measurement's statistics on synthetic timings, and its pass runner (nothing
timed is asserted)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bench.load import busy_processes, measure, run_pass
from bench.paired import format_summary, pair_losses, quartiles, summarise


def test_quartiles_are_linear_percentiles():
    q = quartiles([4.0, 1.0, 3.0, 2.0])
    assert (q["q1"], q["median"], q["q3"]) == (1.75, 2.5, 3.25)
    assert q["values"] == [4.0, 1.0, 3.0, 2.0]
    assert quartiles([2.0])["median"] == 2.0
    with pytest.raises(ValueError, match="no values"):
        quartiles([])
    with pytest.raises(ValueError, match="finite and positive"):
        quartiles([1.0, np.nan])


def test_losses_are_loaded_over_as_is_seconds_per_pair():
    as_is = [{"engine": 1.0, "tile": 2.0}, {"engine": 2.0, "tile": 1.0}]
    loaded = [{"engine": 3.0, "tile": 4.0}, {"engine": 2.0, "tile": 5.0}]
    assert pair_losses(as_is, loaded) == {"engine": [3.0, 1.0], "tile": [2.0, 5.0]}
    with pytest.raises(ValueError, match="2 as-is passes but 1"):
        pair_losses(as_is, loaded[:1])
    with pytest.raises(ValueError, match="pair 1"):
        pair_losses(as_is, [loaded[0], {"engine": 1.0}])


def test_paired_ratio_cancels_a_drift_that_the_losses_do_not():
    """The machine gets busier from pair to pair, scaling every loss alike; the engine always
    loses 1.5x what the tile kernel loses. The losses spread widely, the paired ratio not at
    all, and its median is 1.5 (the criterion fails against the tile kernel), while the ratio
    of the median losses would not show the same figure once the pairs are unequal."""
    drift = [1.0, 4.0, 2.0, 8.0, 3.0]
    as_is = [{"engine": 1.0, "tile": 1.0, "time_major": 1.0} for _ in drift]
    loaded = [{"engine": 1.5 * d, "tile": d, "time_major": 2.0 * d} for d in drift]
    s = summarise(as_is, loaded)
    assert s["pairs"] == 5
    assert s["loss"]["tile"]["median"] == 3.0
    assert s["loss"]["tile"]["q1"] == 2.0 and s["loss"]["tile"]["q3"] == 4.0
    assert s["engine_over"]["tile"]["median"] == pytest.approx(1.5)
    assert s["engine_over"]["tile"]["q3"] - s["engine_over"]["tile"]["q1"] == pytest.approx(0)
    assert s["engine_over"]["time_major"]["median"] == pytest.approx(0.75)
    assert s["holds"] == {"tile": False, "time_major": True}
    assert "engine" not in s["engine_over"]
    assert s["seconds"]["engine"]["loaded"]["median"] == 4.5


def test_paired_ratio_is_the_median_of_per_pair_ratios_not_a_ratio_of_medians():
    as_is = [{"engine": 1.0, "tile": 1.0}] * 3
    loaded = [{"engine": 2.0, "tile": 1.0}, {"engine": 3.0, "tile": 6.0},
              {"engine": 10.0, "tile": 4.0}]
    s = summarise(as_is, loaded)
    # per pair 2/1, 3/6, 10/4 -> median 2.0; the medians' ratio would be 3/4
    assert s["engine_over"]["tile"]["median"] == 2.0
    assert s["loss"]["engine"]["median"] / s["loss"]["tile"]["median"] == 0.75
    assert not s["holds"]["tile"]
    with pytest.raises(ValueError, match="no 'engine'"):
        summarise([{"tile": 1.0}], [{"tile": 2.0}])


def test_format_summary_shows_throughput_loss_and_verdict():
    s = summarise([{"engine": 1.0, "tile": 2.0}], [{"engine": 2.0, "tile": 8.0}])
    lines = format_summary("W1", s, work=100.0)
    assert lines[0] == "W1"
    assert lines[2].startswith("  engine | 100 | 50 | 2.00 [2.00, 2.00]")
    assert lines[3] == "  tile | 50 | 12.5 | 4.00 [4.00, 4.00] | 0.50 [0.50, 0.50] | yes"


def test_run_pass_randomises_the_order_and_checks_each_kernel():
    calls = []
    kernels = {name: (lambda name=name: calls.append(name) or name) for name in "abcd"}
    seen = []

    def check(name, out):
        seen.append((name, out))
        return name != "c"

    rng = np.random.default_rng(1)
    orders = set()
    for _ in range(6):
        seconds, checks, order = run_pass(kernels, check, rng, repeat=2)
        assert sorted(order) == list("abcd") and set(seconds) == set("abcd")
        assert checks == {"a": True, "b": True, "c": False, "d": True}
        orders.add(tuple(order))
    assert len(orders) > 1  # not always the same order
    assert len(calls) == 6 * 4 * 2
    assert all(name == out for name, out in seen)


def test_busy_processes_run_and_are_killed():
    with busy_processes(2, settle=0.0) as pids:
        assert len(pids) == 2
        assert all(os.path.exists(f"/proc/{pid}") for pid in pids)
    for pid in pids:  # reaped: gone, or at least no longer this process's child
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_measure_pairs_passes_and_reports_failed_checks(monkeypatch):
    import bench.load as load

    monkeypatch.setattr(load, "SETTLE_SECONDS", 0.0)
    kernels = {"engine": lambda: 1, "tile": lambda: 2}
    res = measure(kernels, lambda name, out: True, pairs=3, procs=1, repeat=1)
    assert len(res["as_is"]) == len(res["loaded"]) == 3 and len(res["orders"]) == 6
    assert res["checks_ok"] and res["summary"]["pairs"] == 3
    assert len(res["load_average"]) == 3
    bad = measure(kernels, lambda name, out: out == 1, pairs=1, procs=1, repeat=1)
    assert bad["checks_ok"] is False


def test_median_interval_is_seeded_and_brackets_the_median():
    from bench.paired import median_interval

    values = np.random.default_rng(3).lognormal(0.0, 0.3, 60)
    lo, hi = median_interval(values, 2000, seed=1)
    assert lo <= np.median(values) <= hi and lo < hi
    assert median_interval(values, 2000, seed=1) == (lo, hi)
    assert median_interval([2.0] * 5, 100) == (2.0, 2.0)
    with pytest.raises(ValueError, match="resamples"):
        median_interval([], 100)


def test_pool_puts_every_files_pairs_together(tmp_path, capsys):
    """Two runs' passes pooled give the paired ratios of all their pairs, in file order; a
    file without the workload is named in the error."""
    import json

    from bench.pool import main, pooled_passes, pooled_table

    runs = []
    for k, engine_loaded in enumerate((2.0, 4.0)):
        as_is = [{"engine": 1.0, "bruteforce_tile": 1.0}] * 3
        loaded = [{"engine": engine_loaded, "bruteforce_tile": 2.0}] * 3
        path = tmp_path / f"bench-{k}.json"
        path.write_text(json.dumps({"load": {"W1": {"2": {"as_is": as_is, "loaded": loaded}}}}))
        runs.append(path)
    as_is, loaded = pooled_passes(runs, "W1", "2")
    assert len(as_is) == len(loaded) == 6
    assert [p["engine"] for p in loaded] == [2.0] * 3 + [4.0] * 3
    lines = pooled_table(runs, resamples=200)
    assert lines[0].startswith("W1, 2 threads: 6 pairs from 2 files")
    ratio = next(line for line in lines if "bruteforce_tile" in line)
    assert ratio.strip().startswith("bruteforce_tile: 1.50 [")  # median of 1, 1, 1, 2, 2, 2
    assert "(above 1)" in ratio
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"load": {"W2": {}}}))
    with pytest.raises(ValueError, match="other.json: no paired load passes for W1 at 2"):
        pooled_passes([runs[0], other], "W1", "2")
    assert main([str(p) for p in runs] + ["--resamples", "50"]) == 0
    assert "6 pairs from 2 files" in capsys.readouterr().out
