"""The benchmark as a check: ``config.bench`` measured, reported as INFO, never a failure."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from harness.checks.config import CheckConfig
from harness.checks.result import INFO, CheckResult, Verdict


def run_bench(config: CheckConfig, data=None, *, log: Callable[[str], None] | None = None
              ) -> CheckResult | None:
    """The benchmark ``config.bench`` describes: a measurement (INFO), never a failure.

    The summary names the candidate's ``train_step`` time against torch's at the first
    grid point, and starts with DISTURBED when other processes took more than a small
    share of the CPU while it ran (:func:`harness.bench.assess`).
    """
    if config.bench is None:
        return None
    from harness.bench import assess
    from harness.bench import run_bench as measure

    t0 = time.perf_counter()
    result = measure(config.bench, log=log)
    seconds = time.perf_counter() - t0
    table = result.table
    others = [b for b in config.backends if b != "torch"]
    ratio = None
    summary = f"{len(table)} measurements; a measurement and not a check"
    if others and "ratio_to_torch_cpu" in table:
        small = table[(table["op"] == "train_step") & (table["backend"] == others[-1])
                      & (table["device"] == "cpu")]
        if len(small) and math.isfinite(float(small["ratio_to_torch_cpu"].iloc[0])):
            r = small.iloc[0]
            ratio = float(r["ratio_to_torch_cpu"])
            summary = (f"{others[-1]} train_step takes {ratio:.3g}x torch's time at "
                       f"{r['dims']} batch {r['batch_size']} {r['dtype']}; {len(table)} "
                       f"measurements, a measurement and not a check")
    quality = assess(result)
    if quality["disturbed"]:
        summary = (f"DISTURBED: other processes used "
                   f"{100 * quality['other_processes_cpu_share']:.0f}% of the CPU during "
                   f"the benchmark, its times are not reliable; " + summary)
    verdict = Verdict("bench", "Benchmark", INFO, summary, seconds)
    return CheckResult("bench", [verdict], result, settings=config.bench.to_dict(),
                       fields={"bench_measurements": len(table),
                               "bench_ratio_to_torch": ratio,
                               "bench_disturbed": bool(quality["disturbed"])},
                       seconds=seconds)
