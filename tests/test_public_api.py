"""The public API and the import boundaries the architecture depends on."""

from __future__ import annotations

import subprocess
import sys

import scalelab
from scalelab.cli import build_parser


def test_public_names_resolve() -> None:
    for name in ("ServiceConfig", "load_config", "ScaleLabError", "SpecError"):
        assert getattr(scalelab, name) is not None
    for name in ("RetryPolicy", "Backoff", "CircuitBreaker", "HedgeDelay", "ConcurrencyLimit"):
        assert getattr(scalelab, name).__module__ == "scalelab.service.resilience"


def test_importing_scalelab_is_lazy() -> None:
    code = (
        "import sys, scalelab, scalelab.config, scalelab.hdr; "
        "print(sorted(m for m in ('dask', 'distributed', 'locust', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_parses_every_subcommand() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "9000"]).port == 9000
    args = parser.parse_args(["run", "x.toml", "--set", "a=1", "--set", "b=2"])
    assert args.overrides == ["a=1", "b=2"]
    assert parser.parse_args(["exercises", "list"]).exercises_command == "list"
    fault = parser.parse_args(["fault", "start", "worker_kill", "worker=0", "--for", "2"])
    assert (fault.kind, fault.params, fault.duration) == ("worker_kill", ["worker=0"], 2.0)
    assert parser.parse_args(["prometheus", "results/x/latest/000-r0"]).port is None
