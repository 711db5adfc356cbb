"""Facts about the machine a measurement ran on, and its load while it ran.

:func:`machine_info` gathers what a reader needs to judge a benchmark's numbers: the
CPU, its cores, the BLAS libraries and thread pools (threadpoolctl), the Python,
NumPy and torch versions, the date and the load average. :class:`CpuShare` measures
the share of the CPU that other processes took during a run. Cores, CPU times and
load come from psutil.

torch is imported only inside :func:`machine_info`, so that importing this module
stays light.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import timeit
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from harness.runtime.threads import default_threads


def cpu_model() -> str:
    """The CPU's model name.

    psutil does not report it: on Linux it is the ``model name`` line of
    ``/proc/cpuinfo``; elsewhere, or without one, :func:`platform.processor` (or the
    machine type when that is empty).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Physical cores of the machine; None where it cannot tell."""
    return psutil.cpu_count(logical=False)


def logical_cores() -> int | None:
    """Logical CPUs of the machine (hardware threads); None where it cannot tell."""
    return psutil.cpu_count(logical=True)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 0.01; None where unknown."""
    try:
        return [round(v, 2) for v in psutil.getloadavg()]
    except (OSError, AttributeError, RuntimeError):
        return None


def machine_info(threads: int, device: str = "cpu") -> dict[str, Any]:
    """Facts a reader needs to judge the numbers: CPU, cores, BLAS, versions, date.

    Parameters
    ----------
    threads : int
        The thread count the measurements use (recorded as ``threads``).
    device : str
        "cpu", or "cuda" to add the GPU's name (``gpu``) and ``cuda_version``.

    Returns
    -------
    dict
        ``cpu_model``, ``logical_cores``, ``physical_cores``, ``usable_cores``,
        ``threads``, ``numpy_blas``, ``numpy_blas_core_type``, ``threadpools`` (one
        dict per loaded library), ``torch_blas``, ``torch_cpu_capability``,
        ``numpy_version``, ``torch_version``, ``python_version``, ``platform``,
        ``date`` (ISO 8601 with the time zone) and ``load_average_before``.
    """
    import threadpoolctl
    import torch

    pools = threadpoolctl.threadpool_info()
    libs = sorted(({k: info.get(k) for k in ("user_api", "internal_api", "version",
                                             "architecture", "threading_layer", "num_threads")}
                   | {"file": os.path.basename(str(info.get("filepath", "")))}
                   for info in pools),
                  key=lambda lib: (str(lib["user_api"]), lib["file"], str(lib["version"])))
    # threadpoolctl lists libraries in no fixed order, SciPy's OpenBLAS among them when
    # SciPy is loaded: name the one NumPy itself loaded (from its wheel's numpy.libs)
    numpy_blas = _numpy_blas(pools)
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "logical_cores": logical_cores(),
        "physical_cores": physical_cores(),
        "usable_cores": default_threads(),
        "threads": threads,
        "numpy_blas": None if numpy_blas is None else
        f"{numpy_blas['internal_api']} {numpy_blas['version']}",
        "numpy_blas_core_type": None if numpy_blas is None else numpy_blas.get("architecture"),
        "threadpools": libs,
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "torch_cpu_capability": _torch_cpu_capability(),
        "numpy_version": np.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_before": load_average(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _numpy_blas(pools: list[dict]) -> dict[str, Any] | None:
    """The BLAS library NumPy loaded: the one in its wheel's numpy.libs or its package."""
    root = Path(np.__file__).resolve().parent
    blas = [lib for lib in pools if lib.get("user_api") == "blas"]
    for lib in blas:
        where = Path(str(lib.get("filepath", ""))).resolve().parent
        if where == root.parent / "numpy.libs" or root in where.parents:
            return lib
    return blas[0] if len(blas) == 1 else None


def _torch_cpu_capability() -> str | None:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # an old torch
        return None


class CpuShare:
    """Share of the machine's CPU time that other processes used between start and stop.

    The busy time of all CPUs (psutil's system-wide CPU times: everything but idle
    and I/O wait) less this process's own, over the wall time times the logical
    cores. :meth:`stop` returns None where the system's CPU times are unavailable.
    """

    def start(self) -> CpuShare:
        self._t0, self._busy0, self._own0 = timeit.default_timer(), _busy_seconds(), _own_seconds()
        return self

    def stop(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self._busy0 is None:
            return None
        wall = timeit.default_timer() - self._t0
        others = (busy - self._busy0) - (_own_seconds() - self._own0)
        cores = logical_cores() or 1
        return round(max(0.0, others) / (wall * cores), 3) if wall > 0 else None


def _busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (all CPUs together)."""
    try:
        t = psutil.cpu_times()
    except (OSError, RuntimeError):
        return None
    # fields a platform lacks (irq and steal outside Linux) count as zero
    return sum(getattr(t, name, 0.0) for name in
               ("user", "nice", "system", "irq", "softirq", "steal"))


def _own_seconds() -> float:
    """CPU seconds this process has used (user and system, not its children)."""
    t = psutil.Process().cpu_times()
    return t.user + t.system
