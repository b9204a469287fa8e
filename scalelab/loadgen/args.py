"""scalelab's Locust command-line arguments and the typed options read from them.

The arguments are plain Locust custom arguments: they work on the command line,
in a ``locust.conf`` file, as ``LOCUST_*`` environment variables and (where it
makes sense) in the web UI, and Locust forwards them from a master to its
workers. :class:`LoadOptions` reads them back from ``environment.parsed_options``
and checks them, so every part of the load generator sees the same values.
"""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass
from typing import Any

from scalelab.errors import ScaleLabError

LOAD_MODES = ("closed", "open")
ARRIVALS = ("constant", "poisson")
WAIT_MODES = ("none", "constant", "constant_throughput")
SHAPES = ("none", "step", "ramp", "spike")


def add_arguments(parser: Any) -> None:
    """Add scalelab's arguments to Locust's parser (``events.init_command_line_parser``)."""
    # On the parser itself, not in a group: only there does Locust show them in the web UI.
    parser.add_argument(
        "--results-dir",
        default="",
        help="Directory for requests.parquet, latency.hdr and loadgen.json; empty records nothing",
    )
    parser.add_argument(
        "--load-mode",
        choices=LOAD_MODES,
        default="closed",
        help="closed: users with a wait time; open: requests at --rate, independent of responses",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="Open loop: target arrival rate in requests/s, total across all processes",
    )
    parser.add_argument(
        "--arrival",
        choices=ARRIVALS,
        default="poisson",
        help="Open loop: evenly spaced arrivals or a (seeded) Poisson process",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=1000,
        help="Open loop: most requests in flight (total across processes); more are dropped",
    )
    parser.add_argument(
        "--late-ms",
        type=float,
        default=10.0,
        help="Open loop: a request sent more than this after its intended start counts as late",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Seed of the arrival process (and of scenarios that draw random keys)",
    )
    parser.add_argument(
        "--wait-mode",
        choices=WAIT_MODES,
        default="none",
        help="Closed loop: no wait, --wait-value seconds, or --wait-value task runs/s per user",
    )
    parser.add_argument(
        "--wait-value",
        type=float,
        default=1.0,
        help="Closed loop: seconds (constant) or task runs/s per user (constant_throughput)",
    )
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="none",
        include_in_web_ui=False,
        help="Shape of the load over -t: peak is -u users (closed) or --rate (open)",
    )
    parser.add_argument(
        "--step-users",
        type=int,
        default=0,
        include_in_web_ui=False,
        help="step: users added at each step (0: a fifth of -u)",
    )
    parser.add_argument(
        "--step-time",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="step: seconds per step",
    )
    parser.add_argument(
        "--ramp-time",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="ramp: seconds from zero to the peak, which is then held",
    )
    parser.add_argument(
        "--spike-at",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="spike: seconds into the run when the spike starts",
    )
    parser.add_argument(
        "--spike-time",
        type=float,
        default=5.0,
        include_in_web_ui=False,
        help="spike: seconds the spike lasts",
    )
    parser.add_argument(
        "--spike-base",
        type=float,
        default=0.2,
        include_in_web_ui=False,
        help="spike: load outside the spike as a fraction of the peak",
    )


@dataclass(frozen=True)
class LoadOptions:
    """The load model and recording settings of one Locust run."""

    results_dir: str = ""
    load_mode: str = "closed"
    rate: float = 10.0
    arrival: str = "poisson"
    max_concurrency: int = 1000
    late_ms: float = 10.0
    seed: int = 0
    wait_mode: str = "none"
    wait_value: float = 1.0
    shape: str = "none"
    step_users: int = 0
    step_time: float = 10.0
    ramp_time: float = 10.0
    spike_at: float = 10.0
    spike_time: float = 5.0
    spike_base: float = 0.2
    users: int = 1
    run_time: float | None = None

    @property
    def open_loop(self) -> bool:
        """True when requests follow an arrival process rather than users' loops."""
        return self.load_mode == "open"

    @classmethod
    def from_namespace(cls, ns: Namespace | None) -> LoadOptions:
        """Options from Locust's parsed arguments (defaults for anything missing), validated."""
        if ns is None:
            return cls()
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name in ("users", "run_time"):
                continue
            if hasattr(ns, name):
                values[name] = getattr(ns, name)
        users = getattr(ns, "num_users", None)
        values["users"] = int(users) if users else 1
        run_time = getattr(ns, "run_time", None)
        values["run_time"] = float(run_time) if run_time else None
        opts = cls(**_coerce(values))
        opts.validate()
        return opts

    def validate(self) -> None:
        """Raise :class:`ScaleLabError` naming the argument when a value cannot work."""
        checks: list[tuple[bool, str]] = [
            (self.load_mode in LOAD_MODES, f"--load-mode {self.load_mode!r}: use closed or open"),
            (self.arrival in ARRIVALS, f"--arrival {self.arrival!r}: use constant or poisson"),
            (
                self.wait_mode in WAIT_MODES,
                f"--wait-mode {self.wait_mode!r}: use one of {WAIT_MODES}",
            ),
            (self.shape in SHAPES, f"--shape {self.shape!r}: use one of {SHAPES}"),
            (self.rate > 0, f"--rate {self.rate}: give a positive number of requests/s"),
            (self.max_concurrency >= 1, f"--max-concurrency {self.max_concurrency}: at least 1"),
            (self.late_ms >= 0, f"--late-ms {self.late_ms}: give 0 or more milliseconds"),
            (self.wait_value >= 0, f"--wait-value {self.wait_value}: give 0 or more"),
            (
                not (self.wait_mode == "constant_throughput" and self.wait_value <= 0),
                "--wait-value must be positive (task runs/s) with --wait-mode constant_throughput",
            ),
            (self.step_users >= 0, f"--step-users {self.step_users}: give 0 or more users"),
            (
                self.step_time > 0,
                f"--step-time {self.step_time}: give a positive number of seconds",
            ),
            (
                self.ramp_time > 0,
                f"--ramp-time {self.ramp_time}: give a positive number of seconds",
            ),
            (self.spike_at >= 0, f"--spike-at {self.spike_at}: give 0 or more seconds"),
            (
                self.spike_time > 0,
                f"--spike-time {self.spike_time}: give a positive number of seconds",
            ),
            (
                0 <= self.spike_base <= 1,
                f"--spike-base {self.spike_base}: give a fraction in [0, 1]",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ScaleLabError(message)


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Values from the web UI arrive as strings; give them their fields' types."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        default = LoadOptions.__dataclass_fields__[name].default
        if isinstance(default, bool) or default is None or value is None:
            out[name] = value
        elif isinstance(default, (int, float, str)) and not isinstance(value, type(default)):
            try:
                out[name] = type(default)(value)
            except (TypeError, ValueError) as exc:
                flag = "--" + name.replace("_", "-")
                raise ScaleLabError(
                    f"{flag} {value!r}: expected a {type(default).__name__}"
                ) from exc
        else:
            out[name] = value
    return out
