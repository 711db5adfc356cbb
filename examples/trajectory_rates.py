"""False alarms and misses of the training verdict on an amplifying configuration.

Runs the training check (``nn-harness train``) of issue 22's configuration (iris 4-32-3
relu, SGD lr 0.3 momentum 0.9, batches of 4, 20% held out) over seeds, with a correct
class written apart from every backend (``tests.gallery.independent:IndependentNet``),
the built-in torch backend, and changes that start late (``tests.gallery.late``):
a false alarm is a FAIL of a correct candidate, a miss anything but a FAIL of a bug.

Run from the repository root::

    PYTHONPATH=. python examples/trajectory_rates.py --seeds 23 --bug-seeds 8

(``--seeds`` seeds 0..N-1; about 7 minutes on two cores.) docs/tolerances.md quotes
its output.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from harness.checks import CheckConfig, run_training
from harness.data.datasets import load_dataset
from harness.model.specs import ModelSpec, OptimizerSpec

#: (candidate, dtype, epochs, correct?)
CASES = (
    ("tests.gallery.independent:IndependentNet", "float64", 30, True),
    ("tests.gallery.independent:IndependentNet", "float32", 30, True),
    ("torch", "float64", 30, True),
    ("tests.gallery.late:LateLrCut", "float32", 12, False),
    ("tests.gallery.late:LateFrozenLast", "float32", 12, False),
    ("tests.gallery.late:LateLrCut", "float64", 12, False),
    ("tests.gallery.late:LateFrozenLast", "float64", 12, False),
)


def verdict(candidate: str, dtype: str, epochs: int, seed: int) -> str:
    """The training check's status for one run."""
    config = CheckConfig(("scratch", candidate), ModelSpec((4, 32, 3), dtype=dtype, seed=seed),
                         OptimizerSpec("sgd", lr=0.3, momentum=0.9, weight_decay=1e-4),
                         epochs=epochs, batch_size=4, val_fraction=0.2)
    return run_training(config, load_dataset("iris")).status


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the correct runs")
    parser.add_argument("--bug-seeds", type=int, default=None,
                        help="seeds of the late changes (default: --seeds)")
    args = parser.parse_args(argv)
    print(f"{'candidate':<42} {'dtype':<8} {'epochs':>6}  PASS WARN FAIL  rate")
    for candidate, dtype, epochs, correct in CASES:
        t0 = time.perf_counter()
        n = args.seeds if correct or args.bug_seeds is None else args.bug_seeds
        statuses = {s: verdict(candidate, dtype, epochs, s) for s in range(n)}
        counts = Counter(statuses.values())
        bad = counts["FAIL"] if correct else n - counts["FAIL"]
        what = "false alarms" if correct else "misses"
        print(f"{candidate:<42} {dtype:<8} {epochs:>6}  {counts['PASS']:>4} {counts['WARN']:>4} "
              f"{counts['FAIL']:>4}  {bad}/{n} {what} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        wrong = [s for s, v in statuses.items() if (v == "FAIL") == correct]
        if wrong:
            print(f"  seeds: {', '.join(map(str, wrong))}", flush=True)


if __name__ == "__main__":
    main()
