"""The service's Prometheus metrics, in a registry of its own (one per app).

Exported at ``GET /metrics`` and scraped once a second by the experiment runner:

- ``scalelab_requests_total{endpoint,status}``: data-plane requests answered
  (``/ping``, ``/task/cpu``, ``/task/io``), including those shed or failed;
- ``scalelab_request_duration_seconds{endpoint}``: their latency in the service,
  a histogram with fine buckets from 0.5 ms to 30 s;
- ``scalelab_in_flight``: data-plane requests inside the service right now;
- ``scalelab_rejected_total``: requests shed by admission control (503);
- ``scalelab_faults_injected_total{kind}``: errors injected at ingress;
- ``scalelab_dask_tasks_submitted_total``: Dask tasks the executor submitted;
- ``scalelab_batch_size``: requests per Dask task (1 for the direct executor);
- ``scalelab_dask_workers``: workers the scheduler knows;
- ``process_cpu_seconds_total``, ``process_resident_memory_bytes`` and the
  rest of prometheus-client's process metrics: the service process itself
  (with an embedded LocalCluster, that process also runs the scheduler);
- ``scalelab_actors`` and ``scalelab_actor_events_total{event}``: the actor
  executor's live actors, and actors ``created``, ``lost`` and calls ``retried``.

Every layer of the stack (see :mod:`.stack`), measured the same way under its
name as the ``layer`` label:

- ``scalelab_layer_requests_total{layer}``: requests that entered the layer;
- ``scalelab_layer_responses_total{layer,code}``: answers that left it, by
  status class (``2xx`` ... ``5xx``, or ``error`` when it raised);
- ``scalelab_layer_seconds_total{layer}``: time spent inside the layer itself,
  excluding the rest of the stack it called (``next``);
- ``scalelab_layer_outcomes_total{layer,outcome}``: the layer's own outcomes
  (``shed``, ``hit``, ``miss``, ``stalled``, ...);
- ``scalelab_layer_state{layer,name}``: a layer's state now (a breaker's
  ``state``, an adaptive ``limit``, a retry ``budget``, a hedge ``delay_ms``...).

The cache in front of ``GET /task/key/{key}`` (see :mod:`.cache_stage`):

- ``scalelab_cache_hits_total{tier}``: answered from a cache (``local``,
  ``redis``, or ``dask`` for the Dask strategy);
- ``scalelab_cache_misses_total``: computed at the origin for the asking request;
- ``scalelab_cache_coalesced_total``: waited for a computation already in flight;
- ``scalelab_cache_stale_total{reason}``: served past their freshness
  (``revalidate``: while a background refresh runs; ``error``: the origin failed);
- ``scalelab_cache_evictions_total{reason}``: entries a full cache evicted
  (``capacity``) or that expired (``expired``);
- ``scalelab_cache_entries{tier}``: entries held now;
- ``scalelab_cache_origin_calls_total`` / ``scalelab_cache_origin_errors_total``:
  computations of the keyed workload started, and those that failed;
- ``scalelab_cache_refreshes_total``: background refreshes started;
- ``scalelab_cache_invalidations_total``: keys removed by ``DELETE /cache``;
- ``scalelab_cache_redis_errors_total``: Redis calls that failed or timed out;
- ``scalelab_cache_redis_fallbacks_total``: requests served by the in-process
  tier because Redis was away;
- ``scalelab_cache_redis_up``: 1 while Redis answers, 0 while it is away.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

# The "_created" samples double the series and carry nothing the labs use.
disable_created_metrics()

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
)  # fmt: skip
"""Request latency buckets, seconds: about 1.5x apart from 0.5 ms to 30 s."""

BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 10_000)
"""Batch size buckets, requests per Dask task."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""Media type of :meth:`ServiceMetrics.render`."""


class ServiceMetrics:
    """Every metric of one service instance, and cheap ways to record them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "scalelab_requests",
            "Data-plane requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "scalelab_request_duration_seconds",
            "Data-plane request latency inside the service.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.in_flight = Gauge(
            "scalelab_in_flight", "Data-plane requests inside the service now.", registry=r
        )
        self.rejected = Counter(
            "scalelab_rejected", "Requests shed by admission control (503).", registry=r
        )
        self.faults = Counter(
            "scalelab_faults_injected", "Faults injected at ingress, by kind.", ["kind"], registry=r
        )
        self.tasks_submitted = Counter(
            "scalelab_dask_tasks_submitted", "Dask tasks submitted by the executor.", registry=r
        )
        self.batch_size = Histogram(
            "scalelab_batch_size", "Requests per Dask task.", buckets=BATCH_BUCKETS, registry=r
        )
        self.workers = Gauge("scalelab_dask_workers", "Workers the scheduler knows.", registry=r)
        ProcessCollector(registry=r)  # CPU and memory of the service process
        self.cache_hits = Counter(
            "scalelab_cache_hits", "Requests answered from a cache, by tier.", ["tier"], registry=r
        )
        self.cache_misses = Counter(
            "scalelab_cache_misses", "Requests computed at the origin for themselves.", registry=r
        )
        self.cache_coalesced = Counter(
            "scalelab_cache_coalesced",
            "Requests that waited for a computation already in flight.",
            registry=r,
        )
        self.cache_stale = Counter(
            "scalelab_cache_stale",
            "Requests served a stale entry, by reason (revalidate, error).",
            ["reason"],
            registry=r,
        )
        self.cache_evictions = Counter(
            "scalelab_cache_evictions",
            "Entries evicted, by reason (capacity, expired).",
            ["reason"],
            registry=r,
        )
        self.cache_entries = Gauge(
            "scalelab_cache_entries", "Entries the cache holds now, by tier.", ["tier"], registry=r
        )
        self.origin_calls = Counter(
            "scalelab_cache_origin_calls", "Computations of the keyed workload started.", registry=r
        )
        self.origin_errors = Counter(
            "scalelab_cache_origin_errors",
            "Computations of the keyed workload that failed.",
            registry=r,
        )
        self.cache_refreshes = Counter(
            "scalelab_cache_refreshes", "Background refreshes of stale entries.", registry=r
        )
        self.cache_invalidations = Counter(
            "scalelab_cache_invalidations", "Keys removed through DELETE /cache.", registry=r
        )
        self.redis_errors = Counter(
            "scalelab_cache_redis_errors", "Redis calls that failed or timed out.", registry=r
        )
        self.redis_fallbacks = Counter(
            "scalelab_cache_redis_fallbacks",
            "Requests served by the in-process tier while Redis was away.",
            registry=r,
        )
        self.redis_up = Gauge(
            "scalelab_cache_redis_up", "1 while the Redis tier answers, 0 while away.", registry=r
        )
        self.actors = Gauge(
            "scalelab_actors", "Live actors of the actor executor (one per worker).", registry=r
        )
        self.actor_events = Counter(
            "scalelab_actor_events",
            "Actor executor events: created, lost (its worker went away), retried.",
            ["event"],
            registry=r,
        )
        self.layer_requests = Counter(
            "scalelab_layer_requests", "Requests that entered a layer.", ["layer"], registry=r
        )
        self.layer_responses = Counter(
            "scalelab_layer_responses",
            "Answers that left a layer, by status class (or error).",
            ["layer", "code"],
            registry=r,
        )
        self.layer_seconds = Counter(
            "scalelab_layer_seconds",
            "Time spent inside a layer, excluding the rest of the stack it called.",
            ["layer"],
            registry=r,
        )
        self.layer_outcomes = Counter(
            "scalelab_layer_outcomes",
            "A layer's own outcomes (shed, hit, miss, ...).",
            ["layer", "outcome"],
            registry=r,
        )
        self.layer_state = Gauge(
            "scalelab_layer_state",
            "A layer's state now, by name (a breaker's state, a limit, a budget...).",
            ["layer", "name"],
            registry=r,
        )
        self._outcome_children: dict[tuple[str, str], Callable[[float], None]] = {}
        self._request_children: dict[tuple[str, int], Callable[[], None]] = {}
        self._duration_children: dict[str, Callable[[float], None]] = {}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and record its latency (label lookups are cached)."""
        inc = self._request_children.get((endpoint, status))
        if inc is None:
            inc = self.requests.labels(endpoint, str(status)).inc
            self._request_children[(endpoint, status)] = inc
        inc()
        observe = self._duration_children.get(endpoint)
        if observe is None:
            observe = self.duration.labels(endpoint).observe
            self._duration_children[endpoint] = observe
        observe(seconds)

    def layer_outcome(self, layer: str, outcome: str, amount: float = 1.0) -> None:
        """Count ``amount`` of a layer's own ``outcome`` (label lookups are cached)."""
        inc = self._outcome_children.get((layer, outcome))
        if inc is None:
            inc = self.layer_outcomes.labels(layer, outcome).inc
            self._outcome_children[(layer, outcome)] = inc
        inc(amount)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
