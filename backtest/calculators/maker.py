"""MakerDAO Liquidations 2.0 (dss ``dog.sol``, ``clip.sol``, ``abaci.sol``) in exact integers.

Every function mirrors the Solidity arithmetic on Python ``int`` values, so results are
bit-exact with the contracts, including where the contracts round or revert. Units follow dss:

- ``wad``: 18-decimal fixed point (collateral amounts ``ink``/``lot``/``dink``, normalised debt
  ``art``/``dart``, ``chop``, ``chip``);
- ``ray``: 27 decimals (``rate``, ``spot``, prices ``top``/``price``/``buf``/``cut``/``cusp``);
- ``rad``: 45 decimals (``dust``, ``tab``, ``tip``, ``Hole``/``Dirt``, ``owe``, ``chost``).

Sources: makerdao/dss at fa4f6630
(https://github.com/makerdao/dss/tree/fa4f6630afb0624d04a003e920b0d71a00331d98);
``src/abaci.sol`` (price curves,
``rpow``), ``src/dog.sol`` ``bark`` (L170-237), ``src/clip.sol`` ``kick`` (L229-266), ``redo``
(L270-308), ``take`` (L327-416), ``status`` (L454-457), ``upchost`` (L460-463).

Why over 400 lines: it mirrors one protocol's three contracts (``dog.sol``, ``clip.sol``,
``abaci.sol``) whose functions call each other (``bark`` kicks a ``clip`` auction priced by an
``abaci`` curve); one module per protocol is the calculators' rule, mirrored by its test
module.
"""

from __future__ import annotations

from dataclasses import dataclass

from backtest.errors import LiqbtError

__all__ = [
    "WAD",
    "RAY",
    "RAD",
    "BLN",
    "DssRevert",
    "rmul",
    "rdiv",
    "wmul",
    "rpow",
    "linear_decrease_price",
    "stairstep_exponential_decrease_price",
    "exponential_decrease_price",
    "BarkResult",
    "bark",
    "feed_price",
    "KickResult",
    "kick",
    "chost",
    "needs_redo",
    "redo_incentive",
    "TakeResult",
    "take",
]

WAD = 10**18
RAY = 10**27
RAD = 10**45
BLN = 10**9
_UINT256 = 2**256


class DssRevert(LiqbtError):
    """The dss contract would revert; ``reason`` is the contract's revert string.

    Parameters
    ----------
    reason : str
        Revert string as written in the contract, e.g. ``"Clipper/no-partial-purchase"``.
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"dss would revert: {reason}")


def _uint(name: str, value: int) -> int:
    """Return ``value`` if it is a non-negative ``int`` below 2**256, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int (fixed-point integer), got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if value >= _UINT256:
        raise ValueError(f"{name} does not fit in uint256: {value}")
    return value


def _mul(x: int, y: int) -> int:
    z = x * y
    if z >= _UINT256:
        raise DssRevert("mul overflow")
    return z


# --- fixed-point helpers (dss `rmul`, `rdiv`, `wmul`) ----------------------------------------


def rmul(x: int, y: int) -> int:
    """Multiply two ray-scaled integers, rounding down (dss ``rmul``: ``x * y / RAY``).

    Parameters
    ----------
    x, y : int
        Non-negative fixed-point integers; the result has the scale of ``x * y / 1e27``.

    Returns
    -------
    int
        ``floor(x * y / 10**27)``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.
    DssRevert
        If ``x * y`` overflows uint256 (the contract reverts).

    Notes
    -----
    Source: dss ``src/clip.sol`` and ``src/abaci.sol`` ``rmul``.
    """
    return _mul(_uint("x", x), _uint("y", y)) // RAY


def rdiv(x: int, y: int) -> int:
    """Divide with a ray result, rounding down (dss ``rdiv``: ``x * RAY / y``).

    Parameters
    ----------
    x, y : int
        Non-negative fixed-point integers, ``y > 0``.

    Returns
    -------
    int
        ``floor(x * 10**27 / y)``.

    Raises
    ------
    ValueError
        If an argument is negative, not an int, or ``y == 0``.
    DssRevert
        If ``x * RAY`` overflows uint256.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``rdiv``.
    """
    _uint("x", x)
    if _uint("y", y) == 0:
        raise ValueError("rdiv: division by zero (y == 0)")
    return _mul(x, RAY) // y


def wmul(x: int, y: int) -> int:
    """Multiply by a wad factor, rounding down (dss ``wmul``: ``x * y / WAD``).

    Parameters
    ----------
    x, y : int
        Non-negative fixed-point integers.

    Returns
    -------
    int
        ``floor(x * y / 10**18)``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.
    DssRevert
        If ``x * y`` overflows uint256.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``wmul`` (used for ``coin = tip + wmul(tab, chip)`` and
    ``chost = wmul(dust, chop)``).
    """
    return _mul(_uint("x", x), _uint("y", y)) // WAD


def rpow(x: int, n: int, b: int = RAY) -> int:
    """Integer power with half-up rounding at every step, bit-exact with dss ``rpow``.

    Square-and-multiply, exactly as the assembly in ``abaci.sol`` (dss PR #78): each squaring
    and each multiplication into the accumulator adds ``b/2`` before dividing by ``b``.

    Parameters
    ----------
    x : int
        Base, fixed point with scale ``b`` (a ray for the price curves).
    n : int
        Exponent, a non-negative integer (not scaled).
    b : int, default RAY
        The fixed-point base; ``rpow(x, 0, b) == b``.

    Returns
    -------
    int
        ``x**n / b**(n-1)`` rounded as the contract rounds.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``b == 0``.
    DssRevert
        Where the assembly reverts: ``x >= 2**128`` before a squaring, or an intermediate
        product overflowing uint256.

    Notes
    -----
    Source: dss ``src/abaci.sol`` ``StairstepExponentialDecrease.rpow`` /
    ``ExponentialDecrease.rpow`` (identical code).
    """
    _uint("x", x)
    _uint("n", n)
    if _uint("b", b) == 0:
        raise ValueError("rpow: base b must be > 0")
    if n == 0:
        return b
    if x == 0:
        return 0
    z = b if n % 2 == 0 else x
    half = b // 2
    n //= 2
    while n:
        if x >> 128:
            raise DssRevert("rpow overflow (x >= 2**128)")
        xx = x * x
        xx_round = xx + half
        if xx_round >= _UINT256:
            raise DssRevert("rpow overflow")
        x = xx_round // b
        if n % 2:
            zx = z * x
            if zx >= _UINT256:
                raise DssRevert("rpow overflow")
            zx_round = zx + half
            if zx_round >= _UINT256:
                raise DssRevert("rpow overflow")
            z = zx_round // b
        n //= 2
    return z


# --- abacus price curves (abaci.sol) --------------------------------------------------------


def linear_decrease_price(top: int, dur: int, tau: int) -> int:
    """Auction price of ``LinearDecrease``: ``top * (tau - dur) / tau``, 0 from ``dur >= tau``.

    Parameters
    ----------
    top : int
        Starting price, ray (DAI per unit of collateral).
    dur : int
        Seconds since the auction (re)started.
    tau : int
        Seconds after which the price reaches zero.

    Returns
    -------
    int
        Current price, ray: ``rmul(top, (tau - dur) * RAY / tau)``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``tau == 0`` while ``dur < tau``.

    Notes
    -----
    Source: dss ``src/abaci.sol`` ``LinearDecrease.price`` (L85-88).
    """
    _uint("top", top)
    _uint("dur", dur)
    _uint("tau", tau)
    if dur >= tau:
        return 0
    return rmul(top, _mul(tau - dur, RAY) // tau)


def stairstep_exponential_decrease_price(top: int, dur: int, cut: int, step: int) -> int:
    """Auction price of ``StairstepExponentialDecrease``: ``top * cut ** floor(dur / step)``.

    Parameters
    ----------
    top : int
        Starting price, ray.
    dur : int
        Seconds since the auction (re)started.
    cut : int
        Per-step multiplier, ray, ``cut <= RAY`` (e.g. ``0.99 * RAY`` for -1% per step).
    step : int
        Seconds between price drops, ``> 0``.

    Returns
    -------
    int
        Current price, ray: ``rmul(top, rpow(cut, dur // step, RAY))``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``step == 0`` or ``cut > RAY`` (the contract's
        ``file`` rejects it: ``StairstepExponentialDecrease/cut-gt-RAY``).

    Notes
    -----
    Source: dss ``src/abaci.sol`` ``StairstepExponentialDecrease.price`` (L173-175). In the
    current contract ``cut`` is the multiplier itself; an older revision stored ``RAY - cut``.
    """
    _uint("top", top)
    _uint("dur", dur)
    _uint("cut", cut)
    if _uint("step", step) == 0:
        raise ValueError("step must be > 0 seconds")
    if cut > RAY:
        raise ValueError("cut must be <= RAY (StairstepExponentialDecrease/cut-gt-RAY)")
    return rmul(top, rpow(cut, dur // step, RAY))


def exponential_decrease_price(top: int, dur: int, cut: int) -> int:
    """Auction price of ``ExponentialDecrease``: ``top * cut ** dur`` with a per-second ``cut``.

    Parameters
    ----------
    top : int
        Starting price, ray.
    dur : int
        Seconds since the auction (re)started.
    cut : int
        Per-second multiplier, ray, ``cut <= RAY``.

    Returns
    -------
    int
        Current price, ray: ``rmul(top, rpow(cut, dur, RAY))``.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``cut > RAY``.

    Notes
    -----
    Source: dss ``src/abaci.sol`` ``ExponentialDecrease.price`` (L259-261).
    """
    _uint("top", top)
    _uint("dur", dur)
    _uint("cut", cut)
    if cut > RAY:
        raise ValueError("cut must be <= RAY (ExponentialDecrease/cut-gt-RAY)")
    return rmul(top, rpow(cut, dur, RAY))


# --- Dog.bark ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarkResult:
    """Amounts moved by ``Dog.bark`` (all integers in dss units).

    Attributes
    ----------
    dart : int
        Normalised debt taken from the vault, wad.
    dink : int
        Collateral taken from the vault and put up for auction (the auction ``lot``), wad.
    due : int
        Debt sent to the vow, rad: ``dart * rate``.
    tab : int
        DAI the auction must raise, rad: ``due * chop / WAD``.
    room : int
        Liquidation capacity left before this bark, rad: ``min(Hole - Dirt, hole - dirt)``.
    full : bool
        True when the whole vault is liquidated (``dart == art``).
    """

    dart: int
    dink: int
    due: int
    tab: int
    room: int
    full: bool


def bark(
    ink: int,
    art: int,
    rate: int,
    spot: int,
    dust: int,
    chop: int,
    hole: int,
    dirt: int,
    ilk_hole: int,
    ilk_dirt: int,
) -> BarkResult:
    """Compute what ``Dog.bark`` takes from an unsafe vault.

    Parameters
    ----------
    ink : int
        Vault collateral, wad.
    art : int
        Vault normalised debt, wad.
    rate : int
        Ilk accumulated rate, ray (debt in DAI = ``art * rate``).
    spot : int
        Ilk spot price with the liquidation ratio applied, ray.
    dust : int
        Ilk minimum debt, rad.
    chop : int
        Liquidation penalty multiplier, wad, ``>= WAD`` (e.g. ``1.13 * WAD``).
    hole, dirt : int
        Global limit and current global amount in auctions (``Dog.Hole``/``Dog.Dirt``), rad.
    ilk_hole, ilk_dirt : int
        Per-ilk limit and amount in auctions, rad.

    Returns
    -------
    BarkResult

    Raises
    ------
    ValueError
        If an argument is negative or not an int, ``rate == 0`` or ``chop < WAD``.
    DssRevert
        ``Dog/not-unsafe`` (``ink * spot >= art * rate`` or ``spot == 0``),
        ``Dog/liquidation-limit-hit``, ``Dog/dusty-auction-from-partial-liquidation``,
        ``Dog/null-auction`` (``dink == 0``), as the contract.

    Notes
    -----
    Source: dss ``src/dog.sol`` ``bark`` (L170-237). ``room = min(Hole - Dirt, hole - dirt)``,
    ``dart = min(art, room * WAD / rate / chop)``; if the leftover ``(art - dart) * rate`` is
    below ``dust`` the whole vault is taken, otherwise the partial auction must itself be
    non-dusty. ``dink = ink * dart / art``, ``tab = dart * rate * chop / WAD``.
    """
    for name, value in (("ink", ink), ("art", art), ("spot", spot), ("dust", dust)):
        _uint(name, value)
    for name, value in (("hole", hole), ("dirt", dirt), ("ilk_hole", ilk_hole)):
        _uint(name, value)
    _uint("ilk_dirt", ilk_dirt)
    if _uint("rate", rate) == 0:
        raise ValueError("rate must be > 0 (ray)")
    if _uint("chop", chop) < WAD:
        raise ValueError("chop must be >= WAD (Dog/file-chop-lt-WAD)")
    if not (spot > 0 and _mul(ink, spot) < _mul(art, rate)):
        raise DssRevert("Dog/not-unsafe")
    if not (hole > dirt and ilk_hole > ilk_dirt):
        raise DssRevert("Dog/liquidation-limit-hit")
    room = min(hole - dirt, ilk_hole - ilk_dirt)
    dart = min(art, _mul(room, WAD) // rate // chop)
    if art > dart:
        if _mul(art - dart, rate) < dust:
            dart = art
        elif _mul(dart, rate) < dust:
            raise DssRevert("Dog/dusty-auction-from-partial-liquidation")
    dink = _mul(ink, dart) // art
    if dink == 0:
        raise DssRevert("Dog/null-auction")
    due = _mul(dart, rate)
    tab = _mul(due, chop) // WAD
    return BarkResult(dart=dart, dink=dink, due=due, tab=tab, room=room, full=dart == art)


# --- Clipper ----------------------------------------------------------------------------------


def feed_price(val: int, par: int = RAY) -> int:
    """Clipper feed price from the OSM value: ``rdiv(val * BLN, par)``.

    Parameters
    ----------
    val : int
        OSM price, wad (USD per unit of collateral).
    par : int, default RAY
        Spotter ``par`` (USD per DAI), ray.

    Returns
    -------
    int
        Feed price, ray (DAI per unit of collateral).

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``par == 0``.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``getFeedPrice`` (L213-218).
    """
    return rdiv(_mul(_uint("val", val), BLN), par)


@dataclass(frozen=True)
class KickResult:
    """Result of ``Clipper.kick``.

    Attributes
    ----------
    top : int
        Starting price, ray: ``rmul(feed_price, buf)``.
    coin : int
        Keeper incentive paid by the vow, rad: ``tip + wmul(tab, chip)`` (0 if both are 0).
    """

    top: int
    coin: int


def kick(tab: int, lot: int, feed: int, buf: int = RAY, tip: int = 0, chip: int = 0) -> KickResult:
    """Compute the starting price and keeper reward of ``Clipper.kick``.

    Parameters
    ----------
    tab : int
        DAI to raise, rad, ``> 0``.
    lot : int
        Collateral for sale, wad, ``> 0``.
    feed : int
        Feed price, ray (see :func:`feed_price`).
    buf : int, default RAY
        Starting-price multiplier, ray (constructor default ``RAY``).
    tip : int, default 0
        Flat keeper reward, rad.
    chip : int, default 0
        Proportional keeper reward, wad fraction of ``tab``.

    Returns
    -------
    KickResult

    Raises
    ------
    ValueError
        If an argument is negative or not an int.
    DssRevert
        ``Clipper/zero-tab``, ``Clipper/zero-lot``, ``Clipper/zero-top-price``.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``kick`` (L229-266).
    """
    _uint("tab", tab)
    _uint("lot", lot)
    _uint("tip", tip)
    _uint("chip", chip)
    if tab == 0:
        raise DssRevert("Clipper/zero-tab")
    if lot == 0:
        raise DssRevert("Clipper/zero-lot")
    top = rmul(feed, buf)
    if top == 0:
        raise DssRevert("Clipper/zero-top-price")
    coin = tip + wmul(tab, chip) if (tip > 0 or chip > 0) else 0
    return KickResult(top=top, coin=coin)


def chost(dust: int, chop: int) -> int:
    """Compute the Clipper's ``chost = wmul(dust, chop)``: minimum tab left by a partial take.

    Parameters
    ----------
    dust : int
        Ilk minimum debt, rad.
    chop : int
        Liquidation penalty multiplier, wad.

    Returns
    -------
    int
        ``chost``, rad.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``upchost`` (L460-463).
    """
    return wmul(dust, chop)


def needs_redo(top: int, price: int, dur: int, tail: int, cusp: int) -> bool:
    """Whether an auction must be reset: ``dur > tail`` or ``rdiv(price, top) < cusp``.

    Parameters
    ----------
    top : int
        Starting price of the current round, ray, ``> 0``.
    price : int
        Current price from the abacus, ray.
    dur : int
        Seconds since the round started.
    tail : int
        Maximum round length, seconds.
    cusp : int
        Minimum ``price / top`` before a reset, ray.

    Returns
    -------
    bool
        ``done`` of ``Clipper.status``; ``take`` reverts with ``Clipper/needs-reset`` when True.

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``top == 0``.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``status`` (L454-457). Note the strict inequalities: at
    exactly ``dur == tail`` the auction is still live.
    """
    _uint("price", price)
    _uint("dur", dur)
    _uint("tail", tail)
    _uint("cusp", cusp)
    if _uint("top", top) == 0:
        raise ValueError("top must be > 0")
    return dur > tail or rdiv(price, top) < cusp


def redo_incentive(tab: int, lot: int, feed: int, tip: int, chip: int, chost_: int) -> int:
    """Keeper reward paid on ``Clipper.redo``.

    Parameters
    ----------
    tab : int
        Remaining DAI to raise, rad.
    lot : int
        Remaining collateral, wad.
    feed : int
        Fresh feed price, ray.
    tip : int
        Flat reward, rad.
    chip : int
        Proportional reward, wad.
    chost_ : int
        Cached ``dust * chop``, rad (see :func:`chost`).

    Returns
    -------
    int
        ``tip + wmul(tab, chip)`` if ``tab >= chost`` and ``lot * feed >= chost``, else 0, rad.

    Raises
    ------
    ValueError
        If an argument is negative or not an int.

    Notes
    -----
    Source: dss ``src/clip.sol`` ``redo`` (L270-308).
    """
    for name, value in (("tab", tab), ("lot", lot), ("feed", feed), ("tip", tip)):
        _uint(name, value)
    _uint("chip", chip)
    _uint("chost", chost_)
    if tip == 0 and chip == 0:
        return 0
    if tab >= chost_ and _mul(lot, feed) >= chost_:
        return tip + wmul(tab, chip)
    return 0


@dataclass(frozen=True)
class TakeResult:
    """Outcome of ``Clipper.take``.

    Attributes
    ----------
    slice : int
        Collateral bought, wad.
    owe : int
        DAI paid by the buyer, rad.
    tab : int
        DAI still to raise after the take, rad (0 when the auction ends with the debt covered).
    lot : int
        Collateral left in the auction after the take, wad (before any return to the owner).
    returned_to_owner : int
        Collateral sent back to the vault owner because ``tab`` reached 0, wad.
    dirt_released : int
        Amount removed from ``Dog.Dirt`` by ``dog.digs``, rad: ``tab + owe`` if the lot is
        exhausted (the unrecovered tab is cleared too), else ``owe``.
    bad_debt : int
        Tab left unrecovered when the lot is exhausted, rad (it stays with the vow).
    finished : bool
        True when the auction is removed (``lot == 0`` or ``tab == 0``).
    """

    slice: int
    owe: int
    tab: int
    lot: int
    returned_to_owner: int
    dirt_released: int
    bad_debt: int
    finished: bool


def take(tab: int, lot: int, price: int, amt: int, max_price: int, chost_: int) -> TakeResult:
    """Amounts exchanged by ``Clipper.take(id, amt, max, who, data)``.

    Parameters
    ----------
    tab : int
        DAI still to raise, rad, ``> 0``.
    lot : int
        Collateral in the auction, wad.
    price : int
        Current abacus price, ray, ``> 0``. The caller must check the auction does not need a
        reset (:func:`needs_redo`), as ``take`` does first.
    amt : int
        Maximum collateral the buyer wants, wad.
    max_price : int
        Maximum acceptable price, ray.
    chost_ : int
        Cached ``dust * chop``, rad (see :func:`chost`).

    Returns
    -------
    TakeResult

    Raises
    ------
    ValueError
        If an argument is negative or not an int, or ``price == 0``.
    DssRevert
        ``Clipper/too-expensive`` (``max_price < price``) or ``Clipper/no-partial-purchase``
        (a partial buy would leave ``0 < tab < chost`` while ``tab <= chost``).

    Notes
    -----
    Source: dss ``src/clip.sol`` ``take`` (L327-416): ``slice = min(lot, amt)``,
    ``owe = slice * price``; if ``owe > tab`` then ``owe = tab``, ``slice = owe / price``;
    else if ``owe < tab`` and ``slice < lot`` and ``tab - owe < chost``: revert when
    ``tab <= chost``, otherwise ``owe = tab - chost``, ``slice = owe / price``.
    """
    for name, value in (("tab", tab), ("lot", lot), ("amt", amt), ("max_price", max_price)):
        _uint(name, value)
    _uint("chost", chost_)
    if _uint("price", price) == 0:
        raise ValueError("price must be > 0")
    if max_price < price:
        raise DssRevert("Clipper/too-expensive")
    slice_ = min(lot, amt)
    owe = _mul(slice_, price)
    if owe > tab:
        owe = tab
        slice_ = owe // price
    elif owe < tab and slice_ < lot:
        if tab - owe < chost_:
            if not tab > chost_:
                raise DssRevert("Clipper/no-partial-purchase")
            owe = tab - chost_
            slice_ = owe // price
    tab_after = tab - owe
    lot_after = lot - slice_
    if lot_after == 0:
        return TakeResult(
            slice=slice_, owe=owe, tab=tab_after, lot=0, returned_to_owner=0,
            dirt_released=tab_after + owe, bad_debt=tab_after, finished=True,
        )
    if tab_after == 0:
        return TakeResult(
            slice=slice_, owe=owe, tab=0, lot=lot_after, returned_to_owner=lot_after,
            dirt_released=owe, bad_debt=0, finished=True,
        )
    return TakeResult(
        slice=slice_, owe=owe, tab=tab_after, lot=lot_after, returned_to_owner=0,
        dirt_released=owe, bad_debt=0, finished=False,
    )
