"""Results: Parquet tables per run, the run manifest, the DuckDB catalog, the metrics registry."""

from backtest.results.catalog import Catalog
from backtest.results.metrics import METRICS, Metric

__all__ = ["METRICS", "Catalog", "Metric"]
