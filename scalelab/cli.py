"""The ``scalelab`` command: serve, run, report, logs, prometheus, lab, exercises, data,
fault and proxy.

Each subcommand imports its machinery only when it runs, so that ``scalelab
--help`` is fast and no command pulls in more than it needs. Errors a user can
cause (:class:`~scalelab.errors.ScaleLabError`) are printed without a traceback
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scalelab.errors import ScaleLabError


def _serve(args: argparse.Namespace) -> int:
    from scalelab.service.server import serve_from_args

    return serve_from_args(args)


def _run(args: argparse.Namespace) -> int:
    from scalelab.experiment.cli import run_from_args

    return run_from_args(args)


def _report(args: argparse.Namespace) -> int:
    from scalelab.report import report_from_args

    return report_from_args(args)


def _logs(args: argparse.Namespace) -> int:
    from scalelab.logs import logs_from_args

    return logs_from_args(args)


def _prometheus(args: argparse.Namespace) -> int:
    from scalelab.monitoring.cli import prometheus_from_args

    return prometheus_from_args(args)


def _lab(args: argparse.Namespace) -> int:
    from scalelab.lab import lab_from_args

    return lab_from_args(args)


def _exercises(args: argparse.Namespace) -> int:
    from scalelab.exercises.cli import exercises_from_args

    return exercises_from_args(args)


def _data(args: argparse.Namespace) -> int:
    from scalelab.data.cli import data_from_args

    return data_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="scalelab",
        description="A performance testing lab for scalable task architectures.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP task service on a Dask cluster")
    serve.add_argument("--config", metavar="FILE", help="service configuration (TOML)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to listen on (0: a free one, printed in the 'listening on' line)",
    )
    serve.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use an existing Dask scheduler (tcp://host:8786) instead of a LocalCluster",
    )
    serve.add_argument("--workers", type=int, help="LocalCluster worker processes")
    serve.add_argument("--threads", type=int, help="threads per LocalCluster worker")
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="token the admin API requires (needed when --host is not loopback)",
    )
    serve.set_defaults(func=_serve)

    run = sub.add_parser("run", help="run an experiment from a TOML spec")
    run.add_argument("spec", metavar="SPEC.toml", help="experiment spec")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set duration_s=5 --set service.executor.kind=batched",
    )
    run.add_argument("--out", metavar="DIR", default="results", help="results root (./results)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML report")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    report = sub.add_parser("report", help="write an HTML report of a run or an experiment")
    report.add_argument("path", metavar="DIR", help="a run or an experiment directory")
    report.add_argument("--output", metavar="FILE", help="where to write (DIR/report.html)")
    report.set_defaults(func=_report)

    logs = sub.add_parser("logs", help="show the log lines of a run's requests")
    logs.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory")
    which = logs.add_mutually_exclusive_group(required=True)
    which.add_argument("--request", metavar="ID", help="the lines of one request (its id)")
    which.add_argument("--slowest", type=int, metavar="N", help="the N slowest requests' lines")
    logs.add_argument("--json", action="store_true", help="print JSON lines")
    logs.set_defaults(func=_logs)

    prom = sub.add_parser(
        "prometheus", help="serve a run's Prometheus data again (runs with prometheus = true)"
    )
    prom.add_argument("path", metavar="RUN_DIR", help="a run directory (or its prometheus/data)")
    prom.add_argument("--port", type=int, help="port on 127.0.0.1 (a free one by default)")
    prom.set_defaults(func=_prometheus)

    lab = sub.add_parser("lab", help="open JupyterLab on the notebooks")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--notebooks", default="notebooks", metavar="DIR")
    lab.add_argument("--no-browser", action="store_true")
    lab.set_defaults(func=_lab)

    from scalelab.exercises.cli import add_parser as add_exercises

    ex = add_exercises(sub)
    ex.set_defaults(func=_exercises)

    from scalelab.data.cli import add_parser as add_data_parser

    add_data_parser(sub)
    sub.choices["data"].set_defaults(func=_data)

    from scalelab.chaos.cli import add_parsers

    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scalelab`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ScaleLabError as exc:
        print(f"scalelab {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scalelab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
