"""The Locust command line of a run, built from its spec.

Locust only ever runs as a subprocess (importing it monkey-patches the whole
process with gevent), so this module builds argv and never imports locust.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from scalelab.experiment.spec import ExperimentSpec, Scalar

STOP_TIMEOUT_S = 5


def run_time_s(spec: ExperimentSpec) -> int:
    """Locust's ``-t`` in whole seconds: warm-up plus measured time, rounded up."""
    return max(1, math.ceil(spec.warmup_s + spec.duration_s))


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _text(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def locust_args(spec: ExperimentSpec, host_url: str, run_dir: str | Path) -> list[str]:
    """argv for ``python -m locust`` driving ``host_url`` and recording into ``run_dir``.

    Scenario knobs become ``--key value`` (``_`` in a key becomes ``-``); a boolean
    knob is a switch, given as ``--key`` when true and left out when false.
    """
    run = Path(run_dir).resolve()
    load = spec.load
    if load.mode == "open":
        users = load.processes
        spawn_rate: float = load.processes
    else:
        users = load.users
        spawn_rate = load.spawn_rate or load.users
    args = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        spec.locustfile,
        "--headless",
        "--host",
        host_url,
        "-u",
        str(users),
        "-r",
        _text(spawn_rate),
        "-t",
        f"{run_time_s(spec)}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--exit-code-on-error",
        "0",
        "--csv",
        str(run / "locust" / "stats"),
        "--html",
        str(run / "locust" / "report.html"),
        "--logfile",
        str(run / "locust" / "locust.log"),
        "--results-dir",
        str(run),
        "--load-mode",
        load.mode,
        "--seed",
        str(spec.seed),
    ]
    if load.mode == "open":
        assert load.rate is not None  # the spec's validation guarantees it
        args += [
            "--rate",
            _text(load.rate),
            "--arrival",
            load.arrival,
            "--max-concurrency",
            str(load.max_concurrency),
            "--late-ms",
            _text(load.late_ms),
        ]
    else:
        args += ["--wait-mode", load.wait, "--wait-value", _text(load.wait_value)]
    if load.processes > 1:
        args += ["--processes", str(load.processes)]
    if load.shape != "none":
        args += ["--shape", load.shape]
        for key, value in load.shape_params.items():
            args += [_flag(key), _text(value)]
    for key, value in spec.scenario.items():
        if isinstance(value, bool):  # a switch (argparse store_true): present or absent
            args += [_flag(key)] if value else []
        else:
            args += [_flag(key), _text(value)]
    return args
