"""Plain Locust on /ping, without scalelab's user class or recorder: the baseline of their cost.

``--throughput R`` paces each user at R requests a second (Locust's
``constant_throughput``), so that a benchmark can compare CPU per request at
one fixed rate; without it (0) each user sends one request after another.
"""

from typing import Any

from locust import FastHttpUser, constant_throughput, events, task


@events.init_command_line_parser.add_listener
def _knobs(parser: Any, **_: Any) -> None:
    parser.add_argument("--throughput", type=float, default=0.0, help="requests/s per user")


class PlainPing(FastHttpUser):
    """One GET /ping after another, paced by ``--throughput`` when given."""

    def on_start(self) -> None:
        rate = float(self.environment.parsed_options.throughput)
        self._pace = constant_throughput(rate) if rate > 0 else None

    def wait_time(self) -> float:
        return float(self._pace(self)) if self._pace is not None else 0.0

    @task
    def ping(self) -> None:
        self.client.get("/ping")
