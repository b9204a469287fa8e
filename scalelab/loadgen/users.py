"""The Locust user a scenario subclasses: one request logic, closed or open loop.

A scenario writes its request once, as ``call(self, ctx)``, which makes one
request and passes ``context=ctx`` to the client::

    class Baseline(ScaleLabUser):
        def call(self, ctx):
            self.client.get("/ping", name="/ping", context=ctx)

With ``--load-mode closed`` (the default) each user calls it in a loop,
waiting as ``--wait-mode``/``--wait-value`` say (no wait by default). With
``--load-mode open`` each user is a driver: it follows an arrival schedule
(``--rate`` split evenly over all drivers in all processes, ``--arrival``
constant or seeded Poisson, scaled by ``--shape`` if one is named, kept on the
monotonic clock by a :class:`~scalelab.loadgen.arrivals.Schedule`) and runs
every request in its own greenlet at its intended start, whatever the server's
response times, with at most ``--max-concurrency`` in flight (split like the
rate). A request sent more than ``--late-ms`` after its intended start counts
as late; one due while the cap is reached is dropped: it is reported to Locust
as a failed request of method ``DROPPED`` (:data:`~scalelab.loadgen.records.DROPPED_METHOD`)
named ``dropped``, so it shows in Locust's statistics and as a row of
``requests.parquet``, which every scalelab figure counts apart from the requests
sent. The schedule ends when the test starts stopping: arrivals due after that
are not part of the run.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
import traceback
from typing import Any

import gevent
from gevent.pool import Group
from locust import constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from scalelab.loadgen.args import LoadOptions
from scalelab.loadgen.arrivals import Schedule, arrival_offsets, driver_seed
from scalelab.loadgen.profiles import profile_for
from scalelab.loadgen.recorder import DRIVERS_ATTR, PROCESSES_ATTR, RECORDER
from scalelab.loadgen.records import DROPPED_METHOD, INTENDED_KEY

logger = logging.getLogger("scalelab.loadgen")

_driver_numbers = itertools.count()  # drivers started in this process
_user_ids = itertools.count()  # users started in this process (request ids)
_STOPPING = (STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED)


class OpenLoopDropped(Exception):
    """An open-loop request that was never sent: the concurrency cap was reached."""


class ScaleLabUser(FastHttpUser):
    """Base user of scalelab scenarios: subclass it and implement :meth:`call`."""

    abstract = True
    dropped_name = "dropped"
    """Locust request name under which dropped open-loop requests are reported."""

    def __init__(self, environment: Any) -> None:
        opts = LoadOptions.from_namespace(environment.parsed_options)
        self.load = opts
        options = environment.parsed_options
        drivers = int(getattr(options, DRIVERS_ATTR, 0) or opts.users or 1)
        processes = int(getattr(options, PROCESSES_ATTR, 0) or 1)
        self._drivers = max(drivers, 1)
        self._processes = max(processes, 1)
        self._cap = max(1, math.ceil(opts.max_concurrency / self._drivers))
        if opts.open_loop:
            self.concurrency = max(self._cap, 1)
        super().__init__(environment)
        self._name_requests()
        self._contexts: dict[Any, dict[str, Any]] = {}
        self._inflight = Group()
        self._schedule: Schedule | None = None
        self._late_s = opts.late_ms / 1000.0
        self._throughput = (
            constant_throughput(opts.wait_value)
            if opts.wait_mode == "constant_throughput"
            else None
        )

    def _name_requests(self) -> None:
        """Give every request this user sends an ``X-Request-Id`` (unless it has one).

        The service echoes the id, logs it, and carries it to the Dask task; the
        recorder keeps it in ``requests.parquet``, so a request seen in a plot can
        be found in the service's log (``scalelab logs RUN_DIR --request ID``).
        """
        session = self.client
        send = session.request
        prefix = f"p{RECORDER.process_index()}u{next(_user_ids)}-"
        numbers = itertools.count(1)

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            headers = kwargs.get("headers")
            if not headers or "X-Request-Id" not in headers:
                kwargs["headers"] = {**(headers or {}), "X-Request-Id": f"{prefix}{next(numbers)}"}
            return send(method, url, *args, **kwargs)

        session.request = request  # type: ignore[method-assign]

    # -- what a scenario provides ------------------------------------------------------------

    def call(self, ctx: dict[str, Any]) -> None:
        """Make one request, passing ``context=ctx`` to the client."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(self, ctx)")

    # -- Locust hooks ------------------------------------------------------------------------

    def wait_time(self) -> float:
        """Closed loop: the wait chosen by ``--wait-mode``; open loop: none (the schedule paces)."""
        opts = self.load
        if opts.open_loop or opts.wait_mode == "none":
            return 0.0
        if self._throughput is not None:
            return float(self._throughput(self))
        return opts.wait_value

    def context(self) -> dict[str, Any]:
        """The request context of the current open-loop request (its intended start)."""
        if self._contexts:
            return self._contexts.get(gevent.getcurrent(), {})
        return {}

    def on_start(self) -> None:
        """Set up the arrival schedule of an open-loop driver."""
        if not self.load.open_loop:
            return
        opts = self.load
        number = next(_driver_numbers)
        process = RECORDER.process_index()
        global_index = number * self._processes + process
        rate = opts.rate / self._drivers
        phase = (global_index % self._drivers) / opts.rate
        offsets = arrival_offsets(
            rate,
            opts.arrival,
            seed=driver_seed(opts.seed, process, number),
            phase=phase,
            profile=profile_for(opts),
        )
        self._schedule = Schedule(offsets)
        logger.info(
            "scalelab: open-loop driver %d at %.3g requests/s (%s), at most %d in flight",
            global_index,
            rate,
            opts.arrival,
            self._cap,
        )

    def on_stop(self) -> None:
        """Let in-flight open-loop requests finish within the stop timeout, then end them."""
        if not self.load.open_loop:
            return
        try:
            self._inflight.join(timeout=float(self.environment.stop_timeout or 0))
        finally:
            self._inflight.kill(block=True, timeout=5)

    @task
    def _step(self) -> None:
        if self.load.open_loop:
            self._next_arrival()
        else:
            self.call({})

    # -- open loop ---------------------------------------------------------------------------

    def _next_arrival(self) -> None:
        if self._schedule is None:
            self.on_start()
        schedule = self._schedule
        assert schedule is not None
        due = schedule.next_due()
        if due is None:  # the shape has ended: nothing more to send
            raise StopUser()
        delay = schedule.wait_s(due)
        if delay > 0:
            gevent.sleep(delay)
        if self.environment.runner.state in _STOPPING:
            raise StopUser()  # the test is ending: its schedule ends with it
        counts = RECORDER.open_counts
        counts.scheduled += 1
        in_flight = len(self._inflight)
        if in_flight >= self._cap:
            counts.dropped += 1
            self._report_dropped(schedule.intended_start(due))
            return
        self._inflight.spawn(self._send, schedule, due)
        if in_flight + 1 > counts.max_in_flight:
            counts.max_in_flight = in_flight + 1

    def _send(self, schedule: Schedule, due: float) -> None:
        counts = RECORDER.open_counts
        counts.sent += 1
        if schedule.late_s(due) > self._late_s:
            counts.late += 1
        me = gevent.getcurrent()
        ctx = {INTENDED_KEY: schedule.intended_start(due)}
        self._contexts[me] = ctx
        try:
            self.call(ctx)
        except (gevent.GreenletExit, StopUser):
            raise
        except Exception as exc:
            logger.error("%s\n%s", exc, traceback.format_exc())
            self.environment.events.user_error.fire(
                user_instance=self, exception=exc, tb=exc.__traceback__
            )
        finally:
            self._contexts.pop(me, None)

    def _report_dropped(self, intended: float) -> None:
        self.environment.events.request.fire(
            request_type=DROPPED_METHOD,
            name=self.dropped_name,
            response_time=0.0,
            response_length=0,
            response=None,
            context={INTENDED_KEY: intended},
            exception=OpenLoopDropped(
                f"{self._cap} requests in flight: raise --max-concurrency or lower --rate"
            ),
            start_time=time.time(),
        )
