"""Describe the machine and software a benchmark ran on."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from importlib.metadata import version


def describe_machine() -> dict:
    """Return CPU model, core count, memory, Python and key package versions, git commit."""
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    import numba

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "numba": version("numba"),
        "git_commit": commit,
    }


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or of its finished children), MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def _status_mb(field: str) -> float | None:
    """Read a ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB; None off Linux."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident set size of this process now, MB (peak RSS where /proc is missing)."""
    now = _status_mb("VmRSS")
    return peak_rss_mb() if now is None else now


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0: ``clear_refs`` 5).

    Returns True when the reset took effect; then :func:`peak_rss_since_reset_mb` measures the
    high-water mark of what runs afterwards only, not of earlier workloads.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_mb("VmHWM") is not None


def peak_rss_since_reset_mb() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (``VmHWM``), else since start, MB."""
    hwm = _status_mb("VmHWM")
    return peak_rss_mb() if hwm is None else hwm
