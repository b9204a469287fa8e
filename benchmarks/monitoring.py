"""What ``[monitoring]`` costs a run: throughput under load, and the run's wall time.

    .venv/bin/python benchmarks/monitoring.py                  # 2 rounds, 10 s of load each
    .venv/bin/python benchmarks/monitoring.py --rounds 3 --seconds 15

The quickstart's direct executor (one Dask task per request, the case where
Dask's task stream recording has the most to record) under 32 closed-loop
users, run with nothing, with ``dask_report``, with ``prometheus``, and with
both, interleaved round by round so a busier moment of the machine falls on
every variant alike. Printed per variant: the median throughput over rounds
and its ratio to the plain runs, and the median wall time of a run (service
start to service stop) and what it adds. docs/observability.md keeps the
figures and the machine they came from.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalelab.experiment.runner import run_experiment  # noqa: E402

VARIANTS = {
    "plain": [],
    "dask_report": ["monitoring.dask_report=true"],
    "prometheus": ["monitoring.prometheus=true"],
    "both": ["monitoring.dask_report=true", "monitoring.prometheus=true"],
}


def one_run(variant: str, seconds: float, out: Path) -> tuple[float, float, int]:
    """Throughput (req/s), wall time (s) and size on disk (bytes) of one run of ``variant``."""
    result = run_experiment(
        ROOT / "scenarios" / "quickstart.toml",
        overrides=[
            f"duration_s={seconds}",
            'sweep.service.executor.kind=["direct"]',
            *VARIANTS[variant],
        ],
        out=out / variant,
        progress=False,
        report=False,
    )
    (run,) = result.runs
    if run.status != "ok":
        raise SystemExit(f"{variant}: the run failed: {run.error}")
    record = json.loads((run.path / "run.json").read_text())
    size = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    return float(run.summary["throughput_rps"]), float(record["duration_s"]), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float, int]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="scalelab-bench-monitoring-") as tmp:
        for r in range(args.rounds):
            order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                figures[variant].append(one_run(variant, args.seconds, Path(tmp)))
                print(f"round {r + 1} {variant:<12} {figures[variant][-1]}", flush=True)
    print()
    print(f"machine: {platform.node()}, {platform.machine()}, python {platform.python_version()}")
    print(f"{args.rounds} rounds, {args.seconds:g} s of load, direct executor, 32 users")
    base_rps = statistics.median(f[0] for f in figures["plain"])
    base_wall = statistics.median(f[1] for f in figures["plain"])
    print(f"{'variant':<12} {'req/s':>8} {'ratio':>7} {'run wall s':>11} {'added s':>8} {'MB':>6}")
    for variant, runs in figures.items():
        rps = statistics.median(f[0] for f in runs)
        wall = statistics.median(f[1] for f in runs)
        size = statistics.median(f[2] for f in runs) / 1e6
        print(
            f"{variant:<12} {rps:>8.1f} {rps / base_rps:>7.3f} {wall:>11.1f} "
            f"{wall - base_wall:>+8.1f} {size:>6.1f}"
        )


if __name__ == "__main__":
    main()
