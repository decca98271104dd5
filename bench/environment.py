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
