# liqbt: set-up, demo and tests. Everything installs into a local virtualenv (.venv).
#
#   make setup  create .venv, install liqbt, compile the kernels (numba cache)
#   make demo   set up, import real crash tapes, generate 1M-account books, run hard vs partial
#               vs close-factor on May 2021 (1m) and FTX 2022 (5m), write HTML reports
#   make test   set up and run the test suite
#   make calibrate  fit the perp book to the catalogued crashes, check each left out
#               (configs/calibration/perps.toml -> perps-fitted.toml), and the Maker vault book
#               to Maker's state on 2020-03-12 (maker.toml -> maker-fitted.toml), and the Morpho
#               cbBTC book to its market's state on 2025-10-09 (morpho-cbbtc.toml; docs/calibration.md)
#   make black-thursday  ETH vaults through 2020-03-12/13: instant vs slow, gas-bound keepers,
#               vault owners who top up (slow: as fitted to their morning top-ups), and
#               Maker's flip auctions with zero bids (maker-flip)
#               (vault book from configs/calibration/maker-fitted.toml, docs/calibration.md)
#   make black-thursday-ensembles  the congested scenario as a 20-member ensemble, then 200
#               members conditioned on the owners' morning top-ups (history matching)
#   make morpho-oct-2025  Morpho Blue's cbBTC/USDC market on Base through 2025-10-10/11: a loan
#               book calibrated on the market's state the day before, its real liquidations
#               held out, then a 30-member ensemble over the unknowns (liquidators' capital,
#               response) (configs/calibration/morpho-cbbtc-fitted.toml, docs/calibration.md)
#   make policy-library  the perp presets and variants on calibrated perp books, the lending
#               presets on a loans book, every catalogued event with a tape, ACCOUNTS accounts
#               each (configs/policy-library.toml, configs/policy-library-lending.toml)
#   make bench  benchmark workloads W1, W2, W3 and 10M accounts at 1, 2, 4, ... threads up to the
#               cores, next to brute-force kernels; cold vs warm compile (bench/RESULTS.md)
#   make bench-portfolio  1M multi-asset accounts through LUNA 2022 under each order policy
#   make sweep  five crashes x five policies x a 5-point margin grid x 2 stress levels (250 cells)
#   make governance  the example governance proposal's HTML report (reports/*.html): a perp
#               maintenance margin and fee change on calibrated perp books, three crashes
#   make governance-aave  the Aave close factor / bonus proposal on the uncalibrated loans book
#   make governance-maker  Maker's 2020-03-13 executive (flip ttl 10 minutes -> 6 hours) on Black
#               Thursday, over the ensemble members consistent with the owners' top-ups
#   make governance-portfolio  the example proposal on a multi-asset lending + perp market
#   make governance-options  the example proposal on a BTC options venue (May 2021, Oct 2025)
#   make luna-portfolio  LUNA 2022: 1M lending + cross-margin perp accounts under each collateral
#               order, 100k BTC/ETH options accounts, liquidation-at-risk maps, HTML report
#               (configs/luna-2022-portfolio.toml)
#
# Real market data is read from $(LIQBT_SHARED_DATA) (default: ../shared/data beside the
# repository); it is never copied into the repository.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LIQBT_SHARED_DATA ?= $(abspath ../shared/data)
ACCOUNTS ?= 1000000
SEED ?= 7
VAULTS ?= 100000
export LIQBT_SHARED_DATA

DEMO_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/lucaforni__E0V1E-DCA__2501247b0b__d23d101a__BTC_USDT-5m.feather

.PHONY: calibrate setup warm-up-time-major warm-up-decoupled tapes demo-tapes demo demo-books \
	test bench bench-portfolio \
	luna-portfolio black-thursday \
	black-thursday-ensembles black-thursday-bitmex may-2021-maker aave-v2-2021 \
	aave-v2-2021-oracle \
	morpho-oct-2025 \
	policy-library sweep-tapes sweep governance governance-aave governance-maker \
	governance-portfolio governance-options clean

# set-up installs the package and compiles the simulation kernels into numba's cache (30-100 s
# once after an install or a kernel change, about a second afterwards), so no run pays it. The
# two kernel paths share no kernel: under `make -j2` they compile on both cores at once
setup: warm-up-time-major warm-up-decoupled

warm-up-time-major warm-up-decoupled: warm-up-%: $(VENV)/.installed
	$(BIN)/liqbt warm-up --path $*

# uv installs the pinned dependencies in seconds where pip took 40 s of a fresh clone's demo
# (both with a warm download cache); pip is the fallback if uv cannot be had. Neither
# byte-compiles at install time (pip's --no-compile): Python compiles what a run imports
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check 'uv>=0.4,<1' \
		&& $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]' \
		|| { echo "uv failed: installing with pip"; \
		     $(BIN)/pip install --quiet --no-compile --disable-pip-version-check -e '.[test]'; }
	touch $@

tapes: setup demo-tapes

demo-tapes: $(VENV)/.installed
	$(BIN)/liqbt data import $(DEMO_TAPES) --venue binance

# perp books drawn from the calibrated parameters (docs/calibration.md), sized to the market's
# open interest where data/validation has it
PERPS_CALIBRATED := configs/calibration/perps-fitted.toml

# the kernels compile (one core, numba) while the tapes are imported and the books drawn (the
# other core, no numba): on a fresh clone the two overlap instead of adding up
demo: $(VENV)/.installed
	$(MAKE) --no-print-directory -j2 setup demo-books
	$(BIN)/liqbt run configs/may-2021-btc.toml --report
	$(BIN)/liqbt run configs/ftx-2022-btc.toml --report

demo-books: demo-tapes
	$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event may-2021 --seed $(SEED) \
		--params $(PERPS_CALIBRATED) \
		-o data/books/may-2021-btc.parquet
	$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event ftx-2022 --seed $(SEED) \
		--params $(PERPS_CALIBRATED) \
		-o data/books/ftx-2022-btc.parquet

# lint first (ruff, a second), then the kernels compile on both cores (setup's two paths),
# then the suite runs; the Dask LocalCluster tests run in a pytest process of their own,
# without Dask's sampling profiler (tests/conftest.py: with in-process workers it deadlocked
# against polars' and pyarrow's threads, 2026-12-06). Should they hang anyway they are
# stopped after 10 minutes and run once more, saying so, rather than holding CI to its limit.
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory -j2 setup
	$(BIN)/python -m pytest -q -m "not dask"
	@for try in 1 2; do \
		echo "$(BIN)/python -m pytest -q -m dask   (try $$try, at most 600 s)"; \
		timeout 600 $(BIN)/python -m pytest -q -m dask && exit 0; code=$$?; \
		[ $$code -eq 124 ] || exit $$code; \
		echo "the Dask tests hung for 600 s (try $$try): stopped"; \
	done; exit 1

clean:
	rm -rf data/tapes data/books runs reports/*.html reports/*.png

BLACK_THURSDAY_TAPE := \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/aovolkov__freqml__f4cd64f0ce__2562ccba__ETH_USDT-5m.json

black-thursday: setup
	$(BIN)/liqbt data import $(BLACK_THURSDAY_TAPE) --venue binance
	$(BIN)/liqbt book generate --accounts $(VAULTS) --event black-thursday-2020 --symbol ETH/USDT \
		--interval 5m --seed $(SEED) --params configs/calibration/maker-fitted.toml \
		-o data/books/black-thursday-vaults.parquet
	$(BIN)/liqbt run configs/black-thursday-instant.toml --report
	$(BIN)/liqbt run configs/black-thursday-congested.toml --report

# Black Thursday's congested scenario as ensembles over its unknowns: 20 members, then 200
# conditioned on the owners' morning top-ups (docs/calibration.md, docs/ensembles.md)
black-thursday-ensembles: black-thursday
	$(BIN)/liqbt run configs/black-thursday-congested-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/black-thursday-congested-ensemble
	$(BIN)/liqbt run configs/black-thursday-conditioned-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/black-thursday-conditioned-ensemble

# Maker's ETH vaults through May 2021, held out: the Black Thursday vault fit sized to May 2021's
# ETH vault debt (docs/calibration.md, "Lending: Maker vaults on May 2021")
ETH_1M_MAY_2021_TAPE := \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/tooyipjee__freqtrade__44523f8d61__691306a7__ETH_USDT-1m.json
may-2021-maker: setup
	$(BIN)/liqbt data import $(ETH_1M_MAY_2021_TAPE) --venue binance
	$(BIN)/liqbt book generate --accounts $(VAULTS) --event may-2021 --symbol ETH/USDT \
		--interval 1m --seed $(SEED) --params configs/calibration/maker-fitted.toml \
		-o data/books/may-2021-vaults.parquet
	$(BIN)/liqbt run configs/may-2021-maker.toml --report
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt run configs/may-2021-maker-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/may-2021-maker-ensemble
	$(BIN)/liqbt run configs/may-2021-maker-conditioned-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/may-2021-maker-conditioned-ensemble

# Aave v2's WETH reserve in four crashes of 2021 (docs/calibration.md, "Lending: Aave v2's WETH
# reserve"): the fit on the four events is refitted to a scratch file only to print its
# leave-one-out errors (each event's liquidated share when the others alone were fitted: the
# figures to quote); the shipped fit draws a book for February and May 19, sized to the
# reserve's deposits, whose runs are held against its liquidations window by window, then a
# 30-member ensemble per event over the fitted shape (jackknife of the four refits), the book's
# draw, size and latency
ETH_1H_TAPE := \
	$(LIQBT_SHARED_DATA)/ohlcv_1h/dangdoday__SE2025-9.4__a729dcbb11__b797b1af__ETH_USDT-1h.feather
aave-v2-2021: setup
	$(BIN)/liqbt data import $(ETH_1H_TAPE) $(ETH_1M_MAY_2021_TAPE) --venue binance
	$(BIN)/liqbt book calibrate configs/calibration/aave-v2-weth.toml \
		-o $${TMPDIR:-/tmp}/aave-v2-weth-refit.toml
	$(BIN)/liqbt book generate --accounts 50000 --event feb-2021 --symbol ETH/USDT \
		--interval 1h --seed $(SEED) --params configs/calibration/aave-v2-weth-fitted.toml \
		-o data/books/feb-2021-aave-weth.parquet
	$(BIN)/liqbt book generate --accounts 50000 --event may-2021 --symbol ETH/USDT \
		--interval 1m --seed $(SEED) --params configs/calibration/aave-v2-weth-fitted.toml \
		-o data/books/may-2021-aave-weth.parquet
	$(BIN)/liqbt run configs/feb-2021-aave.toml
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt run configs/may-2021-aave.toml --report
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt run configs/feb-2021-aave-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/feb-2021-aave-ensemble
	$(BIN)/liqbt run configs/may-2021-aave-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/may-2021-aave-ensemble

# The same fit and runs on Aave v2's own oracle instead of Binance's candles (docs/calibration.md,
# "On Aave's own oracle"): the feed is not among the shared data; give the Aave v2 subgraph's
# USDT price history (openVietAnh/defi-data-scraping@a0938d7, csvData/tokenPriceinETH/
# USDT_price_in_eth.csv) as AAVE_V2_ORACLE_FEED. The fitted file goes to a scratch path.
AAVE_FIT := $${TMPDIR:-/tmp}/aave-v2-weth-oracle-fitted.toml
aave-v2-2021-oracle: setup
	@test -n "$(AAVE_V2_ORACLE_FEED)" || { echo "set AAVE_V2_ORACLE_FEED to Aave v2's USDT/ETH \
	oracle history (docs/calibration.md, \"On Aave's own oracle\")" >&2; exit 2; }
	$(BIN)/liqbt data import $(ETH_1H_TAPE) $(ETH_1M_MAY_2021_TAPE) --venue binance
	for interval in 1h 1m; do $(BIN)/liqbt data import-feed "$(AAVE_V2_ORACLE_FEED)" \
		--venue aave-v2-oracle --symbol ETH/USDT --interval $$interval --decimals 18 --invert \
		|| exit 1; done
	$(BIN)/liqbt book calibrate configs/calibration/aave-v2-weth-oracle.toml -o $(AAVE_FIT)
	$(BIN)/liqbt book generate --accounts 50000 --event feb-2021 --symbol ETH/USDT \
		--venue binance --interval 1h --seed $(SEED) --params $(AAVE_FIT) \
		-o data/books/feb-2021-aave-weth-oracle.parquet
	$(BIN)/liqbt book generate --accounts 50000 --event may-2021 --symbol ETH/USDT \
		--venue binance --interval 1m --seed $(SEED) --params $(AAVE_FIT) \
		-o data/books/may-2021-aave-weth-oracle.parquet
	$(BIN)/liqbt run configs/feb-2021-aave.toml --set tape.venue=aave-v2-oracle \
		--set book=data/books/feb-2021-aave-weth-oracle.parquet
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt run configs/may-2021-aave.toml --set tape.venue=aave-v2-oracle \
		--set book=data/books/may-2021-aave-weth-oracle.parquet
	$(BIN)/liqbt validate latest

# Black Thursday on BitMEX: the calibrated perp book sized to BitMEX's BTC open interest, its
# insurance fund started at BitMEX's real one; fills at the hour's worst price, then at each
# account's liquidation price (docs/validation.md, "Insurance funds")
BTC_1H_TAPE := \
	$(LIQBT_SHARED_DATA)/ohlcv_1h/dangdoday__SE2025-9.4__a729dcbb11__c5069f4b__BTC_USDT-1h.feather

black-thursday-bitmex: setup
	$(BIN)/liqbt data import $(BTC_1H_TAPE) --venue binance
	$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event black-thursday-2020 --interval 1h \
		--seed $(SEED) --represents bitmex -o data/books/black-thursday-bitmex.parquet
	$(BIN)/liqbt run configs/black-thursday-bitmex.toml --report -q
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt run configs/black-thursday-bitmex.toml --report -q \
		--set execution.fill_price=liquidation_price --set name=black-thursday-bitmex-at-liquidation-price
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt book generate --accounts 100000 --event black-thursday-2020 --interval 1h \
		--seed $(SEED) --represents bitmex -o data/books/black-thursday-bitmex-100k.parquet
	$(BIN)/liqbt run configs/black-thursday-bitmex-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/black-thursday-bitmex-ensemble

OCT_2025_BTC_TAPE := \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MurphyHoops__freqtradeOne__ba6daef02a__1b45ec84__BTC_USDT-5m.feather
# the market's positions on 2025-10-09 (data/validation/oct-2025.toml): the book's granularity
MORPHO_POSITIONS ?= 15739

morpho-oct-2025: setup
	$(BIN)/liqbt data import $(OCT_2025_BTC_TAPE) --venue binance
	$(BIN)/liqbt book generate --accounts $(MORPHO_POSITIONS) --event oct-2025 --symbol BTC/USDT \
		--interval 5m --seed $(SEED) --params configs/calibration/morpho-cbbtc-fitted.toml \
		-o data/books/oct-2025-morpho-cbbtc.parquet
	$(BIN)/liqbt run configs/oct-2025-morpho.toml --report
	$(BIN)/liqbt validate latest
	$(BIN)/liqbt run configs/oct-2025-morpho-ensemble.toml --workers 2
	$(BIN)/liqbt validate $${LIQBT_RUNS:-runs}/sweeps/oct-2025-morpho-ensemble

# The policy library on every catalogued event with a tape in the shared data: event, symbol
# and interval of the finest tape (see $(LIQBT_SHARED_DATA)/README.md).
LIBRARY_EVENTS := \
	black-thursday-2020:ETH/USDT:5m may-2021:BTC/USDT:1m luna-2022:BTC/USDT:5m \
	3ac-2022:ETH/USDT:5m ftx-2022:BTC/USDT:5m yen-carry-2024:BTC/USDT:1m \
	oct-2025:BTC/USDT:5m calm-2023:BTC/USDT:1m
LIBRARY_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MoonEyes__freqtrade__c3e489f0b4__a78bd328__BTC_USDT-5m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f0939ebd__ETH_USDT-5m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/mintanam__ftrade__ee12b33c07__751f728b__BTC_USDT-1m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MurphyHoops__freqtradeOne__ba6daef02a__1b45ec84__BTC_USDT-5m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/Alpergulsen__freqtrade__4b7ca2f0f9__ea8ad10d__BTC_USDT_USDT-1m-futures.feather \
	$(BLACK_THURSDAY_TAPE)

# the perp presets run on the calibrated perp book (the default of `liqbt book generate`), the
# lending presets on the uncalibrated WETH loans book (nothing published sizes it yet)
policy-library: tapes
	$(BIN)/liqbt data import $(LIBRARY_TAPES) --venue binance
	@set -e; for spec in $(LIBRARY_EVENTS); do \
		event=$${spec%%:*}; rest=$${spec#*:}; symbol=$${rest%%:*}; interval=$${rest#*:}; \
		$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event $$event --symbol $$symbol \
			--interval $$interval --seed $(SEED) -o data/books/library-$$event.parquet; \
		$(BIN)/liqbt run configs/policy-library.toml --report -q --set event=$$event \
			--set symbol=$$symbol --set tape.interval=$$interval \
			--set book=data/books/library-$$event.parquet --set name=policy-library-$$event; \
		$(BIN)/liqbt book generate --accounts $(ACCOUNTS) --event $$event --symbol $$symbol \
			--interval $$interval --seed $(SEED) --params configs/books/aave-weth-loans.toml \
			-o data/books/library-lending-$$event.parquet; \
		$(BIN)/liqbt run configs/policy-library-lending.toml --report -q --set event=$$event \
			--set symbol=$$symbol --set tape.interval=$$interval \
			--set book=data/books/library-lending-$$event.parquet \
			--set name=policy-library-lending-$$event; \
	done

# Fit the perp book to the catalogued crashes and check each event left out (docs/calibration.md)
CALIBRATION_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_1h/dangdoday__SE2025-9.4__a729dcbb11__c5069f4b__BTC_USDT-1h.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/mintanam__ftrade__ee12b33c07__751f728b__BTC_USDT-1m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MurphyHoops__freqtradeOne__ba6daef02a__1b45ec84__BTC_USDT-5m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/aminak58__RL-Trading-Validation__05afa85e4f__07840a62__ETH_USDT_USDT-5m-futures.json

calibrate: tapes
	$(BIN)/liqbt data import $(CALIBRATION_TAPES) --venue binance
	$(BIN)/liqbt book calibrate configs/calibration/perps.toml -o $(PERPS_CALIBRATED)
	$(BIN)/liqbt book coverage $(PERPS_CALIBRATED) --members 100 --write
	$(BIN)/liqbt data import $(BLACK_THURSDAY_TAPE) --venue binance
	$(BIN)/liqbt book calibrate configs/calibration/maker.toml -o configs/calibration/maker-fitted.toml
	$(BIN)/liqbt data import $(OCT_2025_BTC_TAPE) --venue binance
	$(BIN)/liqbt book calibrate configs/calibration/morpho-cbbtc.toml \
		-o configs/calibration/morpho-cbbtc-fitted.toml
	$(BIN)/liqbt data import $(ETH_1H_TAPE) $(ETH_1M_MAY_2021_TAPE) --venue binance
	$(BIN)/liqbt book calibrate configs/calibration/aave-v2-weth.toml \
		-o configs/calibration/aave-v2-weth-fitted.toml

bench: tapes
	$(BIN)/python -m bench --workloads W1,W2,W3,W10M

bench-portfolio: setup
	$(BIN)/python -m bench.portfolio --import-shared --accounts $(ACCOUNTS) --seed $(SEED)

SWEEP_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/aovolkov__freqml__f4cd64f0ce__2562ccba__ETH_USDT-5m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MoonEyes__freqtrade__c3e489f0b4__a78bd328__BTC_USDT-5m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f0939ebd__ETH_USDT-5m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/lucaforni__E0V1E-DCA__2501247b0b__d23d101a__BTC_USDT-5m.feather

# tapes of the example sweep and proposal: Black Thursday (ETH 5m), May 2021 (BTC 1m),
# LUNA (BTC 5m), 3AC (ETH 5m), FTX (BTC 5m)
sweep-tapes: setup
	$(BIN)/liqbt data import $(SWEEP_TAPES) --venue binance

sweep: sweep-tapes
	$(BIN)/liqbt sweep configs/sweeps/crashes-margin.toml

# the example proposal: a perp maintenance margin and fee change on calibrated perp books,
# May 2021 (BTC 1m), August 2024 (BTC 1m), October 2025 (BTC 5m)
GOVERNANCE_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/mintanam__ftrade__ee12b33c07__751f728b__BTC_USDT-1m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MurphyHoops__freqtradeOne__ba6daef02a__1b45ec84__BTC_USDT-5m.feather

governance: setup
	$(BIN)/liqbt data import $(GOVERNANCE_TAPES) --venue binance
	$(BIN)/liqbt report --governance configs/proposals/perp-maintenance-fee.toml

# the Aave example: a close factor and bonus change on the (uncalibrated) WETH loans book
governance-aave: sweep-tapes
	$(BIN)/liqbt report --governance configs/proposals/aave-close-factor-bonus.toml

# Maker's flip ttl change on the day that prompted it, conditioned on the owners' top-ups
governance-maker: setup
	$(BIN)/liqbt data import $(BLACK_THURSDAY_TAPE) --venue binance
	$(BIN)/liqbt report --governance configs/proposals/maker-flip-ttl.toml --workers 2

# the example proposal on a multi-asset lending + perp market (LUNA 2022 at 1h, FTX 2022 at 5m)
governance-portfolio: setup
	$(BIN)/liqbt data import $(LUNA_PORTFOLIO_TAPES) $(FTX_PORTFOLIO_TAPES) --venue binance
	$(BIN)/liqbt report --governance configs/proposals/multi-asset-close-factor.toml

# the example proposal on a BTC options venue (May 2021 and October 2025, BTC at 15m)
governance-options: setup
	$(BIN)/liqbt data import $(OPTIONS_PROPOSAL_TAPES) --venue binance
	$(BIN)/liqbt report --governance configs/proposals/options-penalty.toml

# BTC spot: 1m from 2021-04-20 to 05-20 (May 2021), 5m from 2025-09-25 to 10-25 (Oct 2025)
OPTIONS_PROPOSAL_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_1m/tooyipjee__freqtrade__44523f8d61__b50348e9__BTC_USDT-1m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MurphyHoops__freqtradeOne__ba6daef02a__1b45ec84__BTC_USDT-5m.feather

LUNA_PORTFOLIO_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_1h/MoonEyes__freqtrade__043a6c2541__d99b6d65__LUNA_USDT-1h.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/MoonEyes__freqtrade__c3e489f0b4__a78bd328__BTC_USDT-5m.json \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f0939ebd__ETH_USDT-5m.feather \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/BestiaTantrica__freqtrade-bestia__111e2ac8c9__f904bee2__SOL_USDT-5m.feather

# FTX 2022 at 5m: BTC (lucaforni, to 2023-09), ETH and SOL (BestiaTantrica, above)
FTX_PORTFOLIO_TAPES := \
	$(LIQBT_SHARED_DATA)/ohlcv_5m/lucaforni__E0V1E-DCA__2501247b0b__d23d101a__BTC_USDT-5m.feather

luna-portfolio: setup
	$(BIN)/liqbt data import $(LUNA_PORTFOLIO_TAPES) --venue binance
	$(BIN)/liqbt portfolio run configs/luna-2022-portfolio.toml --report
