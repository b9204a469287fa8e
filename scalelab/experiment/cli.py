"""``scalelab run SPEC.toml``: run an experiment, print a summary table and the report's path."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from scalelab.experiment.runner import ExperimentInterrupted, ExperimentResult, run_experiment
from scalelab.procs import terminate_on_sigterm


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_table(result: ExperimentResult) -> str:
    """One line per run: id, parameters, requests, rps, p50/p99 ms, error rate, status."""
    header = ["run", "params", "requests", "rps", "p50 ms", "p99 ms", "errors %", "status"]
    rows = [header]
    for run in result.runs:
        s = run.summary
        params = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in run.params.items()) or "-"
        err = s.get("error_rate")
        rows.append(
            [
                run.run_id,
                params,
                _fmt(s.get("requests")),
                _fmt(s.get("throughput_rps")),
                _fmt(s.get("p50_ms"), 2),
                _fmt(s.get("p99_ms"), 2),
                _fmt(err * 100 if isinstance(err, int | float) else None, 2),
                run.status,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _table_text(result: ExperimentResult) -> str:
    """The report's summary table when :mod:`scalelab.report` offers one, else our own."""
    try:
        from scalelab.analysis import load_experiment
        from scalelab.report import summary_table_text
    except ImportError:
        return summary_table(result)
    try:
        return str(summary_table_text(load_experiment(result.path)))
    except Exception:  # the table must never hide the results
        return summary_table(result)


def _print_outcome(result: ExperimentResult) -> None:
    print()
    print(_table_text(result))
    print()
    print(f"results: {result.path}")
    if result.report_path:
        print(f"report:  {result.report_path}")
    failed = [r for r in result.runs if r.status == "failed"]
    for run in failed:
        first = (run.error or "").splitlines()[0] if run.error else "unknown error"
        print(f"failed:  {run.run_id}: {first}", file=sys.stderr)


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``args.spec``; exit 0 when every run is ok and held its ``[slo]``, 1 when a run
    failed or its steady-state hypothesis did not hold (the phase is named), 130 when
    interrupted."""
    try:
        with terminate_on_sigterm():
            result = run_experiment(
                args.spec,
                overrides=list(args.overrides or []),
                out=args.out,
                progress=not args.quiet,
                report=not args.no_report,
            )
    except ExperimentInterrupted as exc:
        _print_outcome(exc.result)
        print("interrupted: children ended, measured files kept", file=sys.stderr)
        return 130
    _print_outcome(result)
    broken = steady_state_failures(result)
    for line in broken:
        print(f"slo:     {line}", file=sys.stderr)
    return 0 if result.status == "ok" and not broken else 1


def steady_state_failures(result: ExperimentResult) -> list[str]:
    """One line per run whose ``[slo]`` hypothesis failed, naming the phase and the limits."""
    lines = []
    for run in result.runs:
        s = run.summary
        if s.get("slo_pass") is not False:
            continue
        phase = s.get("slo_failed_phase")
        rows = {r["phase"]: r for r in s.get("slo_phases") or []}
        if phase and phase in rows:
            failed = ", ".join(
                f"{name} {_fmt(rows[phase].get(_figure(name)), 3)} (limit "
                f"{s['slo'][name]['limit']:g})"
                for name in rows[phase]["failed"]
            )
        else:
            failing = [n for n, v in (s.get("slo") or {}).items() if not v.get("pass")]
            phase = "/".join(
                w
                for w in ("before", "during", "after", "overall")
                if any(w in (s["slo"][n].get("checked") or []) for n in failing)
            )
            failed = ", ".join(failing)
        lines.append(f"{run.run_id}: the steady state did not hold in phase {phase}: {failed}")
    return lines


def _figure(limit: str) -> str:
    return "throughput_rps" if limit == "min_throughput_rps" else limit
