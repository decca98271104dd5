"""Statistics of the paired load measurement (:mod:`bench.load`): pure arithmetic, no timing.

A measurement is ``N`` pairs of passes; in each pair every kernel is timed once as is and once
with background busy processes. Per kernel and pair the *loss* is the as-is throughput over the
loaded one (equivalently loaded seconds over as-is seconds; 1: nothing lost, 2: half the
throughput). The engine's *paired ratio* against a kernel is the engine's loss over that
kernel's loss in the same pair: both were timed seconds apart, so the machine's drift between
pairs (other people's jobs starting and stopping) cancels in it much more than in either loss.
Each is summarised over the pairs by its median and interquartile range (numpy's linear
percentiles). The issue's load criterion ("the engine loses no more than the brute-force
kernels do") holds against a kernel when the median paired ratio is at most 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def quartiles(values: Sequence[float]) -> dict:
    """Median, first and third quartile (linear percentiles) and the values themselves.

    Raises
    ------
    ValueError
        No values, or one that is not finite and positive (a loss or ratio of timings).
    """
    a = np.asarray(values, np.float64)
    if a.size == 0:
        raise ValueError("no values to summarise")
    if not np.all(np.isfinite(a) & (a > 0.0)):
        raise ValueError(f"losses and ratios must be finite and positive: {a.tolist()}")
    q1, med, q3 = np.percentile(a, [25.0, 50.0, 75.0])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "values": a.tolist()}


def median_interval(values: Sequence[float], resamples: int = 10_000,
                    seed: int = 0) -> tuple[float, float]:
    """Return the 95% bootstrap interval of the median of ``values``.

    The 2.5th and 97.5th percentiles of the medians of ``resamples`` resamples with replacement
    (numpy ``Generator`` seeded by ``seed``, so the same values give the same interval).

    Raises
    ------
    ValueError
        No values, or ``resamples`` below 1.
    """
    a = np.asarray(values, np.float64)
    if a.size == 0 or resamples < 1:
        raise ValueError(f"need values and resamples >= 1 (got {a.size} values, {resamples})")
    medians = np.median(np.random.default_rng(seed).choice(a, (resamples, a.size)), axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return float(lo), float(hi)


def pair_losses(as_is: Sequence[dict], loaded: Sequence[dict]) -> dict[str, list[float]]:
    """Per kernel, the loss in each pair: loaded seconds / as-is seconds.

    Parameters
    ----------
    as_is, loaded : sequence of dict, one per pair
        Seconds per kernel name (best of the pass's repeats), the as-is and the loaded pass of
        each pair. Every pass must time the same kernels.

    Returns
    -------
    dict
        Kernel name -> list of losses (loaded seconds / as-is seconds = as-is throughput /
        loaded throughput), one per pair.

    Raises
    ------
    ValueError
        The two sequences differ in length, or a pass lacks a kernel another has.
    """
    if len(as_is) != len(loaded):
        raise ValueError(f"{len(as_is)} as-is passes but {len(loaded)} loaded ones")
    if not as_is:
        raise ValueError("no pairs")
    names = list(as_is[0])
    for k, (a, b) in enumerate(zip(as_is, loaded, strict=True)):
        if set(a) != set(names) or set(b) != set(names):
            raise ValueError(f"pair {k}: kernels {sorted(a)} as is, {sorted(b)} loaded, "
                             f"expected {sorted(names)}")
    return {name: [b[name] / a[name] for a, b in zip(as_is, loaded, strict=True)]
            for name in names}


def summarise(as_is: Sequence[dict], loaded: Sequence[dict], engine: str = "engine") -> dict:
    """Summarise a paired measurement: losses per kernel and the engine's paired ratios.

    Parameters
    ----------
    as_is, loaded : sequence of dict, one per pair
        Seconds per kernel name (:func:`pair_losses`).
    engine : str
        The kernel whose loss is compared with every other's.

    Returns
    -------
    dict
        ``loss``: kernel -> :func:`quartiles` of its losses; ``engine_over``: other kernel ->
        :func:`quartiles` of (engine's loss / that kernel's loss) per pair; ``holds``: other
        kernel -> whether the median paired ratio is at most 1; ``seconds``: kernel ->
        {``as_is``, ``loaded``}: :func:`quartiles` of its seconds in each kind of pass.
    """
    losses = pair_losses(as_is, loaded)
    if engine not in losses:
        raise ValueError(f"no {engine!r} among the kernels {sorted(losses)}")
    over = {name: quartiles([e / x for e, x in zip(losses[engine], values, strict=True)])
            for name, values in losses.items() if name != engine}
    return {
        "pairs": len(as_is),
        "loss": {name: quartiles(values) for name, values in losses.items()},
        "engine_over": over,
        "holds": {name: q["median"] <= 1.0 for name, q in over.items()},
        "seconds": {name: {"as_is": quartiles([a[name] for a in as_is]),
                           "loaded": quartiles([b[name] for b in loaded])} for name in losses},
    }


def format_summary(title: str, summary: dict, work: float, engine: str = "engine") -> list[str]:
    """Lines of a table: per kernel median throughput as is and loaded, loss, paired ratio.

    ``work`` is the account-steps of one call (accounts x steps): throughput = work / seconds.
    """
    def q(d: dict, fmt: str = "{:.2f}") -> str:
        return (fmt.format(d["median"]) + " [" + fmt.format(d["q1"]) + ", "
                + fmt.format(d["q3"]) + "]")

    lines = [title, "  kernel | as is, account-steps/s | loaded | loss, median [IQR] | "
                    f"{engine} loss / kernel loss, median [IQR] | holds"]
    for name, loss in summary["loss"].items():
        sec = summary["seconds"][name]
        row = [name, f"{work / sec['as_is']['median']:.3g}",
               f"{work / sec['loaded']['median']:.3g}", q(loss)]
        if name in summary["engine_over"]:
            row += [q(summary["engine_over"][name]), "yes" if summary["holds"][name] else "NO"]
        else:
            row += ["", ""]
        lines.append("  " + " | ".join(row))
    return lines
