"""Multi-asset accounts in flat arrays, per-asset risk parameters and policy parameters.

A :class:`PortfolioBook` holds N accounts CSR style: account ``i`` owns positions
``offsets[i] .. offsets[i + 1]`` of the flat position arrays. With int16 assets and float64
units a position costs 10 bytes and an account 25 bytes (kind, offset, cash, owner), so a
million accounts with three positions each take about 55 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from backtest.errors import BookError, ConfigError
from backtest.kernels.enums import TriggerPrice
from backtest.kernels.portfolio_enums import (
    ASSET_DTYPE,
    PORTFOLIO_POLICY_DTYPE,
    AccountKind,
    OrderPolicy,
)
from backtest.strict import StrictModel
from backtest.tapes.schema import parse_symbol
from backtest.validation import describe

KIND_NAMES = {"lending": AccountKind.LENDING, "cross": AccountKind.CROSS_PERP,
              "isolated": AccountKind.ISOLATED_PERP}
"""Account kinds by their name in book files."""

ORDER_NAMES = {"protocol": OrderPolicy.PROTOCOL, "least_sensitive": OrderPolicy.LEAST_SENSITIVE,
               "largest": OrderPolicy.LARGEST, "proportional": OrderPolicy.PROPORTIONAL}
"""Order policies by their configuration name."""



class AssetRisk(StrictModel):
    """Risk parameters of one asset (fractions).

    Attributes
    ----------
    liquidation_threshold : float
        LT: weight of the collateral in the health factor, (0, 1).
    loan_to_value : float
        LTV: borrowing power at origination, (0, LT) (the book generator's borrow cap).
    liquidation_bonus : float
        Extra collateral a liquidator seizes: ``repaid x (1 + bonus) / price``; ``LT x (1 +
        bonus) < 1`` so that liquidating a healthy-ish account improves its health.
    maintenance_margin_rate : float
        Perp maintenance margin, fraction of notional, (0, 1).
    liquidation_penalty : float
        Perp liquidation penalty, fraction of the closed notional, [0, 1).
    """

    liquidation_threshold: float = Field(gt=0.0, lt=1.0)
    loan_to_value: float = Field(gt=0.0, lt=1.0)
    liquidation_bonus: float = Field(ge=0.0, lt=1.0)
    maintenance_margin_rate: float = Field(gt=0.0, lt=1.0)
    liquidation_penalty: float = Field(ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> AssetRisk:
        if self.loan_to_value >= self.liquidation_threshold:
            raise ValueError("loan_to_value must be below liquidation_threshold")
        if self.liquidation_threshold * (1.0 + self.liquidation_bonus) >= 1.0:
            raise ValueError("liquidation_threshold x (1 + liquidation_bonus) must be < 1")
        return self


#: Default risk parameters by base asset (docs/portfolios.md discusses each):
#: lending values after Aave v3's Ethereum-market listings for ETH and BTC (WETH bonus 5%:
#: aave-dao/aave-v3-origin), wider margins for SOL and LUNA, which Aave never listed on
#: Ethereum (illustrative: a mid-cap and a long-tail asset); perp maintenance margins are dYdX
#: v4's liquidity tiers (Large-Cap 3%, Mid-Cap 5%, Long-Tail 10%) and the penalty its 1.5%
#: maximum liquidation fee (dydxprotocol/v4-chain ``protocol/testing/mainnet/genesis.json``).
DEFAULT_ASSET_RISK: dict[str, AssetRisk] = {
    "BTC": AssetRisk(liquidation_threshold=0.78, loan_to_value=0.73, liquidation_bonus=0.05,
                     maintenance_margin_rate=0.03, liquidation_penalty=0.015),
    "ETH": AssetRisk(liquidation_threshold=0.83, loan_to_value=0.805, liquidation_bonus=0.05,
                     maintenance_margin_rate=0.03, liquidation_penalty=0.015),
    "SOL": AssetRisk(liquidation_threshold=0.70, loan_to_value=0.60, liquidation_bonus=0.075,
                     maintenance_margin_rate=0.05, liquidation_penalty=0.015),
    "LUNA": AssetRisk(liquidation_threshold=0.50, loan_to_value=0.40, liquidation_bonus=0.10,
                      maintenance_margin_rate=0.10, liquidation_penalty=0.015),
}


class PortfolioParams(StrictModel):
    """A portfolio liquidation policy (configuration names; see ``docs/portfolios.md``).

    Attributes
    ----------
    order : {"protocol", "least_sensitive", "largest", "proportional"}
        :class:`OrderPolicy`: which collateral is seized / position closed first.
    trigger : {"extreme", "close"}
        Trigger and fill at each position's adverse candle extreme, or at the close.
    close_factor : float
        Lending: share of the debt one liquidation may repay, (0, 1] (Aave: 0.5).
    full_close_health_factor : float
        Lending: at or below this health factor the whole debt may be repaid (Aave v3.0-3.2:
        0.95).
    protocol_fee : float
        Lending: share of the liquidation bonus paid to the insurance fund (Aave's
        ``liquidationProtocolFee``, 10% on WETH), [0, 1].
    perp_keeper_share : float
        Perps: share of the penalty paid to the keeper; the rest to the insurance fund.
    target_health : float
        Perps: equity / maintenance margin restored by a liquidation, >= 1 (1: just back to
        maintenance).
    insurance_fund_usd : float
        Insurance fund balance at the start, USD (covers bad debt; the rest is socialised).
    assets : dict of str to AssetRisk
        Risk parameters by base asset, overriding :data:`DEFAULT_ASSET_RISK`.
    chunk_size : int
        Accounts per parallel chunk (fixes the summation order, not the result's meaning).
    """

    order: Literal["protocol", "least_sensitive", "largest", "proportional"] = "protocol"
    trigger: Literal["extreme", "close"] = "extreme"
    close_factor: float = Field(0.5, gt=0.0, le=1.0)
    full_close_health_factor: float = Field(0.95, ge=0.0, le=1.0)
    protocol_fee: float = Field(0.10, ge=0.0, le=1.0)
    perp_keeper_share: float = Field(0.5, ge=0.0, le=1.0)
    target_health: float = Field(1.0, ge=1.0)
    insurance_fund_usd: float = Field(0.0, ge=0.0)
    assets: dict[str, AssetRisk] = Field(default_factory=dict)
    chunk_size: int = Field(4096, ge=1)

    @classmethod
    def parse(cls, data: dict, source: str = "portfolio parameters") -> PortfolioParams:
        """Validate a mapping, raising :class:`ConfigError` that names the bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, f"{source}: ")) from None

    def asset_risk(self, symbols: tuple[str, ...] | list[str]) -> np.ndarray:
        """Return the ``ASSET_DTYPE`` records of ``symbols``, shape (A,).

        Raises
        ------
        ConfigError
            If an asset has neither an entry in ``assets`` nor a default.
        """
        out = np.zeros(len(symbols), dtype=ASSET_DTYPE)
        for a, sym in enumerate(symbols):
            base = parse_symbol(sym)[0]
            risk = self.assets.get(base) or DEFAULT_ASSET_RISK.get(base)
            if risk is None:
                raise ConfigError(f"asset {sym} has no risk parameters: add assets.{base} "
                                  f"(liquidation_threshold, loan_to_value, liquidation_bonus, "
                                  f"maintenance_margin_rate, liquidation_penalty)")
            for name in ASSET_DTYPE.names:
                out[a][name] = getattr(risk, name)
        return out

    def policy_record(self) -> np.ndarray:
        """Return the ``PORTFOLIO_POLICY_DTYPE`` record, shape (1,)."""
        rec = np.zeros(1, dtype=PORTFOLIO_POLICY_DTYPE)
        rec[0]["order"] = int(ORDER_NAMES[self.order])
        rec[0]["trigger"] = int(TriggerPrice.EXTREME if self.trigger == "extreme"
                                else TriggerPrice.CLOSE)
        for name in ("close_factor", "full_close_health_factor", "protocol_fee",
                     "perp_keeper_share", "target_health"):
            rec[0][name] = getattr(self, name)
        return rec


@dataclass(eq=False)
class PortfolioBook:
    """Accounts with several positions, in flat arrays (CSR).

    Attributes
    ----------
    symbols : tuple of str
        Assets; ``pos_asset`` indexes into it (the aligned tapes' order).
    kind : ndarray, shape (N,), int8
        :class:`AccountKind`.
    offsets : ndarray, shape (N + 1,), int64
        Account ``i`` holds positions ``offsets[i] .. offsets[i + 1]``; ``offsets[0] == 0``.
    pos_asset : ndarray, shape (P,), int16
        Asset index of each position.
    pos_units : ndarray, shape (P,), float64
        Asset units: > 0 collateral or long perp, < 0 short perp.
    cash : ndarray, shape (N,), float64
        USD: a lending account's stablecoin debt is ``-cash``; a perp account's equity is
        ``cash + sum(units x price)``.
    owner : ndarray, shape (N,), int64
        Trader id; a trader's isolated positions are separate accounts with one owner.
    meta : dict of str to str
        Generator, seed, event, ... (written to Parquet metadata).
    """

    symbols: tuple[str, ...]
    kind: np.ndarray
    offsets: np.ndarray
    pos_asset: np.ndarray
    pos_units: np.ndarray
    cash: np.ndarray
    owner: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def n_accounts(self) -> int:
        """Number of accounts N."""
        return int(self.kind.shape[0])

    @property
    def n_positions(self) -> int:
        """Number of positions P."""
        return int(self.pos_units.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, bytes."""
        return sum(getattr(self, k).nbytes for k in
                   ("kind", "offsets", "pos_asset", "pos_units", "cash", "owner"))

    def copy(self) -> PortfolioBook:
        """Return a deep copy (the kernel updates units and cash in place)."""
        return PortfolioBook(self.symbols, self.kind.copy(), self.offsets.copy(),
                             self.pos_asset.copy(), self.pos_units.copy(), self.cash.copy(),
                             self.owner.copy(), dict(self.meta))

    def account_of_position(self) -> np.ndarray:
        """Return the account of each position, shape (P,), int64."""
        return np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.offsets))

    def values(self, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (collateral or long value, short value) of each account at ``prices``.

        Parameters
        ----------
        prices : ndarray, shape (A,), float64
            USD per unit of each asset.

        Returns
        -------
        tuple of ndarray, shape (N,), float64
            Sum of ``units x price`` over positive and over negative positions (USD).
        """
        v = self.pos_units * np.asarray(prices, dtype=np.float64)[self.pos_asset]
        acct = self.account_of_position()
        pos = np.bincount(acct, weights=np.where(v > 0, v, 0.0), minlength=self.n_accounts)
        neg = np.bincount(acct, weights=np.where(v < 0, v, 0.0), minlength=self.n_accounts)
        return pos, neg

    def health(self, prices: np.ndarray, risk: np.ndarray) -> np.ndarray:
        """Return each account's health at one price per asset (``< 1``: liquidatable).

        Parameters
        ----------
        prices : ndarray, shape (A,), float64
            USD per unit.
        risk : ndarray, shape (A,), ``ASSET_DTYPE``

        Returns
        -------
        ndarray, shape (N,), float64
            Lending: health factor ``sum(units x price x LT) / debt`` (inf without debt).
            Perps: ``equity / maintenance margin`` (inf without positions).
        """
        p = np.asarray(prices, dtype=np.float64)[self.pos_asset]
        v = self.pos_units * p
        acct = self.account_of_position()
        n = self.n_accounts
        lt = risk["liquidation_threshold"][self.pos_asset]
        mm_rate = risk["maintenance_margin_rate"][self.pos_asset]
        weighted = np.bincount(acct, weights=np.where(v > 0, v * lt, 0.0), minlength=n)
        equity = self.cash + np.bincount(acct, weights=v, minlength=n)
        mm = np.bincount(acct, weights=mm_rate * np.abs(v), minlength=n)
        with np.errstate(divide="ignore", invalid="ignore"):
            hf = np.where(self.cash < 0, weighted / -self.cash, np.inf)
            perp = np.where(mm > 0, equity / mm, np.inf)
        return np.where(self.kind == AccountKind.LENDING, hf, perp)

    def validate(self, source: str | None = None) -> PortfolioBook:
        """Check the arrays' shapes, dtypes and the account rules; return ``self``.

        Raises
        ------
        BookError
            Naming the first bad account (index and owner) and what is wrong: offsets not
            starting at 0 or decreasing, an account without positions, an unknown kind or
            asset, non-finite units or cash, a lending account with a short position or
            positive cash, an isolated account with more than one position, an asset twice
            in one account.
        """
        n = self.n_accounts
        if self.offsets.shape != (n + 1,) or self.cash.shape != (n,) or \
                self.owner.shape != (n,):
            raise BookError(f"array shapes disagree: {n} accounts, offsets "
                            f"{self.offsets.shape}, cash {self.cash.shape}", source)
        if self.pos_asset.shape != self.pos_units.shape:
            raise BookError("pos_asset and pos_units differ in length", source)
        if n == 0:
            raise BookError("the book has no accounts", source)
        if self.offsets[0] != 0 or self.offsets[-1] != self.n_positions:
            raise BookError("offsets must start at 0 and end at the number of positions", source)
        counts = np.diff(self.offsets)
        acct = self.account_of_position() if (counts >= 0).all() else None
        is_lending = self.kind == AccountKind.LENDING
        checks = [
            (counts < 1, "has no position (offsets must increase)"),
            (~np.isin(self.kind, [int(k) for k in AccountKind]), "has an unknown kind"),
            (~np.isfinite(self.cash), "has a non-finite cash balance"),
            (is_lending & (self.cash > 0), "is a lending account with positive cash (the "
                                           "debt is -cash)"),
            ((self.kind == AccountKind.ISOLATED_PERP) & (counts != 1),
             "is an isolated perp account with more than one position"),
        ]
        if acct is not None:
            bad_pos = ((self.pos_asset < 0) | (self.pos_asset >= len(self.symbols))
                       | ~np.isfinite(self.pos_units))
            checks.append((np.bincount(acct, weights=bad_pos, minlength=n) > 0,
                           "has a position with an unknown asset or non-finite units"))
            short = (self.pos_units < 0) & is_lending[acct]
            checks.append((np.bincount(acct, weights=short, minlength=n) > 0,
                           "is a lending account with a negative (borrowed) position; debts "
                           "are stablecoin only"))
            key = acct * (len(self.symbols) + 1) + self.pos_asset.astype(np.int64)
            dup = np.zeros(self.n_positions, dtype=bool)
            order = np.argsort(key, kind="stable")
            dup[order[1:]] = key[order[1:]] == key[order[:-1]]
            checks.append((np.bincount(acct, weights=dup, minlength=n) > 0,
                           "holds the same asset twice"))
        for mask, message in checks:
            if mask.any():
                i = int(np.argmax(mask))
                raise BookError(f"account {i} (owner {int(self.owner[i])}) {message}"
                                + (f"; {int(mask.sum())} accounts affected" if mask.sum() > 1
                                   else ""), source)
        return self


__all__ = ["DEFAULT_ASSET_RISK", "KIND_NAMES", "ORDER_NAMES", "AssetRisk", "PortfolioBook",
           "PortfolioParams"]
