# liqbt: set-up, demo and tests. Everything installs into a local virtualenv (.venv).
#
#   make demo   set up, import real crash tapes, generate 1M-account books, run hard vs partial
#               vs close-factor on May 2021 (1m) and FTX 2022 (5m), write HTML reports
#   make test   set up and run the test suite
#   make bench  benchmark workloads W1, W2, W3 and 10M accounts (bench/RESULTS.md)
#
# Real market data is read from $(LIQBT_SHARED_DATA) (default: ../shared/data beside the
# repository); it is never copied into the repository.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LIQBT_SHARED_DATA ?= $(abspath ../shared/data)
ACCOUNTS ?= 1000000
SEED ?= 7
export LIQBT_SHARED_DATA

DEMO_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/lucaforni__E0V1E-DCA__2501247b0b__d23d101a__BTC_USDT-5m.feather

.PHONY: setup tapes demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

tapes: setup
	$(BIN)/liqbt data import $(DEMO_TAPES) --venue binance

demo: tapes
	$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event may-2021 --seed $(SEED) \
		-o data/books/may-2021-btc.parquet
	$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event ftx-2022 --seed $(SEED) \
		-o data/books/ftx-2022-btc.parquet
	$(BIN)/liqbt run configs/may-2021-btc.toml --report
	$(BIN)/liqbt run configs/ftx-2022-btc.toml --report

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf data/tapes data/books runs reports/*.html

bench: tapes
	$(BIN)/python -m bench --workloads W1,W2,W3,W10M
