"""Shared fixtures: the real-data directory, a temporary tape store, synthetic tape files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from backtest.tapes import TapeStore

T0 = int(datetime(2021, 5, 19, tzinfo=UTC).timestamp() * 1000)
"""2021-05-19 00:00 UTC in epoch ms: the start of synthetic tapes."""


@pytest.fixture(autouse=True)
def _no_dask_profiler(request):
    """Run Dask tests without the workers' sampling profiler.

    With in-process workers (``LocalCluster(processes=False)``) the profiler's
    ``sys._current_frames()`` on the event-loop thread deadlocked against polars' and
    pyarrow's native threads taking the GIL (one hang in ``DataFrame.filter`` inside a
    worker thread, py-spy, 2026-12-06; earlier ones inside pyarrow). Results do not depend on
    it; ``distributed.worker.profile.enabled`` is Dask's own switch.
    """
    if request.node.get_closest_marker("dask") is None:
        yield
        return
    pytest.importorskip("distributed", reason="liqbt[dask] not installed")  # its defaults
    import dask

    with dask.config.set({"distributed.worker.profile.enabled": False}):
        yield


@pytest.fixture
def shared_data() -> Path:
    """Return the real market data directory from ``LIQBT_SHARED_DATA`` or skip."""
    value = os.environ.get("LIQBT_SHARED_DATA")
    if not value:
        pytest.skip("LIQBT_SHARED_DATA not set: real market data unavailable")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"LIQBT_SHARED_DATA={value} is not a directory")
    return path


@pytest.fixture
def tmp_store(tmp_path: Path) -> TapeStore:
    """Return an empty tape store in a temporary directory."""
    return TapeStore(tmp_path / "store")


def store_files(store: TapeStore) -> dict[str, bytes]:
    """Every file under the store root (including temporaries) -> its bytes."""
    if not store.root.exists():
        return {}
    return {str(p.relative_to(store.root)): p.read_bytes()
            for p in sorted(store.root.rglob("*")) if p.is_file()}


class Synth:
    """Writers of synthetic tape files in the formats users hold."""

    @staticmethod
    def rows(n: int = 50, start_ms: int = T0, interval_s: int = 60, seed: int = 1,
             price: float = 100.0) -> list[list[float]]:
        """A consistent random-walk OHLCV list of [ts_ms, o, h, l, c, v]."""
        rng = np.random.default_rng(seed)
        out = []
        close = price
        for i in range(n):
            o = close
            c = o * float(np.exp(rng.normal(0, 0.002)))
            h = max(o, c) * (1 + float(rng.uniform(0, 0.001)))
            lo = min(o, c) * (1 - float(rng.uniform(0, 0.001)))
            v = float(rng.uniform(1, 10))
            out.append([start_ms + i * interval_s * 1000, round(o, 6), round(h, 6), round(lo, 6),
                        round(c, 6), round(v, 6)])
            close = round(c, 6)
        return out

    @staticmethod
    def ft_json(path: Path, rows: list, gz: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(rows).encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    @staticmethod
    def ft_feather(path: Path, rows: list) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.array(rows, dtype=np.float64)
        table = pa.table({
            "date": pa.array(arr[:, 0].astype(np.int64) * 1_000_000, pa.timestamp("ns", tz="UTC")),
            **{name: pa.array(arr[:, j + 1]) for j, name in
               enumerate(("open", "high", "low", "close", "volume"))},
        })
        feather.write_feather(table, path)
        return path

    @staticmethod
    def funding_rows(times_ms: list[int], rates: list[float]) -> list[list[float]]:
        return [[t, r, 0.0, 0.0, 0.0, 0.0] for t, r in zip(times_ms, rates, strict=True)]

    @staticmethod
    def binance_csv_text(rows: list, header: bool = False, micros: bool = False) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow(["open_time", "open", "high", "low", "close", "volume", "close_time",
                        "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume",
                        "ignore"])
        for ts, o, h, lo, c, v in rows:
            scale = 1000 if micros else 1
            w.writerow([int(ts) * scale, o, h, lo, c, v, (int(ts) + 59_999) * scale, v * c, 10,
                        v / 2, v * c / 2, 0])
        return buf.getvalue()

    @classmethod
    def binance_csv(cls, path: Path, rows: list, header: bool = False, micros: bool = False
                    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cls.binance_csv_text(rows, header, micros))
        return path

    @classmethod
    def binance_zip(cls, path: Path, rows: list, header: bool = False,
                    extra_member: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(path.with_suffix(".csv").name, cls.binance_csv_text(rows, header))
            if extra_member:
                zf.writestr("other.csv", "x")
        return path

    @staticmethod
    def plain_csv(path: Path, rows: list, time_format: str = "iso",
                  time_name: str = "timestamp") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{time_name},open,high,low,close,volume,extra"]
        for ts, o, h, lo, c, v in rows:
            if time_format == "iso":
                t = datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            elif time_format == "iso_z":
                t = datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            elif time_format == "s":
                t = str(int(ts) // 1000)
            else:
                t = str(int(ts))
            lines.append(f"{t},{o},{h},{lo},{c},{v},x")
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def synth() -> type[Synth]:
    """Return the synthetic file writers."""
    return Synth


@pytest.fixture
def snapshot():
    """Return a function mapping a store to {relative path: bytes} of every file in it."""
    return store_files


@pytest.fixture(scope="session")
def governance_report(tmp_path_factory) -> dict:
    """Build the 6-event, 20-set governance report once per test session."""
    from tests.governance_world import build_governance_report

    return build_governance_report(tmp_path_factory.mktemp("governance"))
