"""liqbt: backtest liquidation policies of lending and perp protocols on real crashes.

Layers, in data-flow order:

- :mod:`backtest.tapes`    historical price tapes: importers, schema, store
- :mod:`backtest.events`   the catalog of named crash windows
- :mod:`backtest.books`    account populations (synthetic or imported)
- :mod:`backtest.policies` liquidation policies (TOML files in ``strategies/``)
- :mod:`backtest.kernels`  numba kernels and their plain-Python reference twins
- :mod:`backtest.engine`   scenario assembly and kernel dispatch
- :mod:`backtest.results`  Parquet outputs, run manifest, DuckDB catalog, metrics
- :mod:`backtest.report`   self-contained HTML reports
- :mod:`backtest.cli`      the ``liqbt`` command
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("liqbt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
