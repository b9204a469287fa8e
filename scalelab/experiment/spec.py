"""Experiment specs: a TOML file naming a locustfile, load, service configuration and sweep.

A spec may also carry a fault schedule (``[[faults]]``: a stall or a change of
the service's configuration at a time after the load starts) and a steady-state
hypothesis (``[slo]``: limits on latency percentiles, error rate and throughput,
checked before the first fault and after the last one), and what each run
records besides its own measurements (``[monitoring]``: a real Prometheus, Dask's
performance report).

A spec is validated whole before anything starts: unknown keys, wrong types, a
missing locustfile, an unknown sweep key, an empty sweep list, or a fault that
names an unknown service field or falls outside the load all raise
:class:`~scalelab.errors.SpecError` with a message that names the field. Every
point of the sweep is validated too, so a run never fails half-way through an
experiment because of its own spec.
"""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scalelab.config import ServiceConfig, parse_value, read_toml, set_path
from scalelab.errors import ConfigError, SpecError
from scalelab.validation import describe_validation_error

Scalar = bool | int | float | str
"""A value a locustfile knob can take: it becomes ``--key value`` on Locust's command line."""

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_KNOB_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
SHAPE_PARAMS = ("step_users", "step_time", "ramp_time", "spike_at", "spike_time", "spike_base")
"""Parameters of the named load shapes, passed to Locust as ``--step-users`` and so on."""


class _Section(BaseModel):
    """Base of every spec section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class LoadSpec(_Section):
    """The load Locust applies: a closed loop of users, or an open loop at an arrival rate."""

    mode: Literal["closed", "open"] = Field(
        default="closed",
        description="'closed': users each wait for their response; "
        "'open': requests arrive at `rate` whatever the response times.",
    )
    users: int = Field(default=10, ge=1, le=10_000, description="Closed loop: concurrent users.")
    spawn_rate: float | None = Field(
        default=None, gt=0, description="Users started per second; empty starts all at once."
    )
    wait: Literal["none", "constant", "constant_throughput"] = Field(
        default="none",
        description="Closed loop wait between a user's requests: none, constant (wait_value "
        "seconds) or constant_throughput (wait_value requests per second per user).",
    )
    wait_value: float = Field(default=0.0, ge=0, description="Seconds, or requests/s per user.")
    rate: float | None = Field(default=None, gt=0, description="Open loop: requests per second.")
    arrival: Literal["constant", "poisson"] = Field(
        default="poisson", description="Open loop spacing of arrivals (poisson is seeded)."
    )
    max_concurrency: int = Field(
        default=1_000, ge=1, le=100_000, description="Open loop: requests in flight at most."
    )
    late_ms: float = Field(
        default=10.0, ge=0, description="Open loop: sent this much after its time counts as late."
    )
    processes: int = Field(default=1, ge=1, le=64, description="Locust worker processes.")
    shape: Literal["none", "step", "ramp", "spike"] = Field(
        default="none", description="A named load shape over the run's time."
    )
    shape_params: dict[str, Scalar] = Field(
        default_factory=dict,
        description="The shape's parameters: " + ", ".join(SHAPE_PARAMS) + ".",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LoadSpec:
        if self.mode == "open" and self.rate is None:
            raise ValueError("open-loop load needs load.rate (requests per second); set it")
        if self.wait != "none" and self.wait_value <= 0:
            raise ValueError(f"load.wait = '{self.wait}' needs load.wait_value > 0; set it")
        for key in self.shape_params:
            if key not in SHAPE_PARAMS:
                raise ValueError(
                    f"load.shape_params.{key} is not a shape parameter; use one of "
                    + ", ".join(SHAPE_PARAMS)
                )
        if self.shape_params and self.shape == "none":
            raise ValueError("load.shape_params is set but load.shape is 'none'; name a shape")
        return self


MAX_STALL_S = 300.0
"""Longest stall a fault may ask for (the service's ``POST /admin/stall`` limit)."""

SLO_LIMITS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "error_rate", "min_throughput_rps")
"""The limits a steady-state hypothesis can set; each names a ``summary.json`` figure."""


class FaultSpec(_Section):
    """One entry of the fault schedule: at ``at_s`` seconds into the load, a fault.

    ``stall = S`` holds every data-plane request arriving in the next S seconds
    (``POST /admin/stall?seconds=S``). ``set = {"faults.error_rate" = 0.2}`` lays
    those dotted service fields over the running configuration (``PUT
    /admin/config``); ``until_s`` puts back the values they had just before.
    ``action = "<kind>"`` with ``params = {...}`` starts a fault of that kind
    (``worker_kill``, ``worker_pause``, ``task``, ``network``...: see
    :mod:`scalelab.chaos.kinds`) through ``POST /admin/faults``; ``until_s``
    ends it (required for the kinds that last until they are ended).
    """

    at_s: float = Field(ge=0, le=86_400, description="Seconds after the load's first request.")
    stall: float | None = Field(
        default=None, gt=0, le=MAX_STALL_S, description="Stall the service for this many seconds."
    )
    set: dict[str, Any] | None = Field(
        default=None,
        description="Dotted service fields and their values, e.g. {'faults.error_rate' = 0.2}.",
    )
    action: str | None = Field(
        default=None,
        description="'stall', 'set', or a fault kind (worker_kill, worker_pause, task, ...).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The fault kind's parameters, e.g. {worker = 0}."
    )
    until_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="When to revert a `set` or end a fault (seconds, as at_s).",
    )

    @field_validator("set", mode="before")
    @classmethod
    def _flatten(cls, v: Any) -> Any:
        """``{faults = {error_rate = 0.2}}`` and ``{"faults.error_rate" = 0.2}`` mean the same."""
        if not isinstance(v, dict):
            return v
        flat: dict[str, Any] = {}

        def walk(prefix: str, node: dict[str, Any]) -> None:
            for key, value in node.items():
                path = f"{prefix}{key}"
                if isinstance(value, dict) and value:
                    walk(path + ".", value)
                else:
                    flat[path] = value

        walk("", v)
        return flat

    @model_validator(mode="after")
    def _one_action(self) -> FaultSpec:
        legacy = "stall" if self.stall is not None else "set" if self.set is not None else None
        if self.stall is not None and self.set is not None:
            raise ValueError("give exactly one action: stall = <seconds> or set = { ... }")
        if self.action is None and legacy is None:
            raise ValueError(
                "give exactly one action: stall = <seconds>, set = { ... }, or "
                "action = '<fault kind>' with params = { ... }"
            )
        if legacy is not None and self.action not in (None, legacy):
            raise ValueError(f"action = {self.action!r} and {legacy} both given; keep one")
        if legacy is None:
            self._check_kind()
        else:
            self.action = legacy
            if self.params:
                raise ValueError(f"params belong to a fault kind, not to {legacy}; remove them")
        if self.set is not None:
            if not self.set:
                raise ValueError("set is empty; name at least one service field")
            for key in self.set:
                if key == "cluster" or key.startswith("cluster."):
                    raise ValueError(
                        f"set.{key}: the cluster cannot change while the service runs; "
                        "set it in [service.cluster] instead"
                    )
                if not _sweepable(key, _SERVICE_PATHS) or key in _SERVICE_SECTIONS:
                    raise ValueError(
                        f"set.{key} is not a service field; use a dotted path such as "
                        "'faults.error_rate', 'faults.ingress_delay_ms' or "
                        "'admission.max_in_flight'"
                    )
        if self.until_s is not None:
            if self.stall is not None:
                raise ValueError("until_s reverts a `set` or ends a fault; a stall ends by itself")
            if self.until_s <= self.at_s:
                raise ValueError(
                    f"until_s ({self.until_s:g}) must be later than at_s ({self.at_s:g})"
                )
        return self

    def _check_kind(self) -> None:
        from scalelab.chaos.kinds import FaultParamsError, lasting, parse_fault

        assert self.action is not None
        try:
            model = parse_fault(self.action, self.params, "params")
        except FaultParamsError as exc:
            raise ValueError(str(exc).replace("\n", ";")) from None
        self.params = model.model_dump(mode="json")
        if lasting(self.action, model) and self.until_s is None:
            raise ValueError(f"action = {self.action!r} lasts until it is ended: give until_s")

    @property
    def kind(self) -> str:
        """``stall``, ``set``, or the fault kind."""
        return self.action or ("stall" if self.stall is not None else "set")

    @property
    def end_s(self) -> float:
        """When the fault is over (seconds, as ``at_s``); a `set` without ``until_s`` at once."""
        if self.stall is not None:
            return self.at_s + self.stall
        return self.until_s if self.until_s is not None else self.at_s

    def describe(self, index: int) -> str:
        """A short human name, e.g. ``faults.0 (stall 1 s at 5 s)``."""
        if self.stall is not None:
            what = f"stall {self.stall:g} s"
        elif self.set is not None:
            what = "set " + ", ".join(f"{k}={v!r}" for k, v in (self.set or {}).items())
        else:
            shown = {k: v for k, v in self.params.items() if v not in (None, 0, 0.0, "", [], {})}
            what = f"{self.action} " + " ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"faults.{index} ({what.strip()} at {self.at_s:g} s)"


class SloSpec(_Section):
    """A steady-state hypothesis: limits the run must meet before and after its faults.

    Latency limits (``p50_ms`` ... ``max_ms``) and ``error_rate`` are upper
    bounds, ``min_throughput_rps`` a lower bound, all on the figures of
    ``summary.json`` computed over a window of the measured requests.
    """

    p50_ms: float | None = Field(default=None, gt=0, description="Median latency at most (ms).")
    p90_ms: float | None = Field(default=None, gt=0, description="p90 latency at most (ms).")
    p99_ms: float | None = Field(default=None, gt=0, description="p99 latency at most (ms).")
    p999_ms: float | None = Field(default=None, gt=0, description="p99.9 latency at most (ms).")
    max_ms: float | None = Field(default=None, gt=0, description="Largest latency at most (ms).")
    error_rate: float | None = Field(default=None, ge=0, le=1, description="Share of errors.")
    min_throughput_rps: float | None = Field(
        default=None, gt=0, description="Requests per second at least."
    )
    recovery_s: float = Field(
        default=2.0,
        ge=0,
        le=3_600,
        description="Time allowed after the last fault ends before the 'after' window starts.",
    )
    judge: list[Literal["before", "during", "after"]] = Field(
        default_factory=lambda: ["before", "after"],  # type: ignore[arg-type]
        description="Phases the hypothesis must hold in: before, during, after each fault.",
    )
    goodput_ms: float | None = Field(
        default=None,
        gt=0,
        description="A success counts as goodput within this latency (default: p99_ms, "
        "else max_ms, else any).",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> SloSpec:
        if not self.limits():
            raise ValueError("[slo] sets no limit; give one of " + ", ".join(SLO_LIMITS))
        return self

    def limits(self) -> dict[str, float]:
        """The limits that are set, by name."""
        return {k: v for k in SLO_LIMITS if (v := getattr(self, k)) is not None}


class MonitoringSpec(_Section):
    """What each run records besides its own measurements: Prometheus, Dask's report.

    Both are off by default: each costs start-up time and disk space per run
    (docs/observability.md gives the figures). The run's own scraper
    (``metrics.parquet``) always runs, every ``sample_interval_s``.
    """

    prometheus: bool = Field(
        default=False,
        description="Run a real Prometheus server for each run, scraping the service, the "
        "Dask scheduler and workers; its data stays in <run>/prometheus/data.",
    )
    dask_report: bool = Field(
        default=False,
        description="Save Dask's performance report (task stream, worker profiles, "
        "bandwidth) of the measured window as <run>/dask-report.html.",
    )
    scrape_interval_s: float = Field(
        default=1.0,
        ge=0.1,
        le=60.0,
        description="Prometheus's scrape interval, seconds.",
    )
    sample_interval_s: float = Field(
        default=1.0,
        ge=0.05,
        le=60.0,
        description="The run's own scraper's interval (metrics.parquet), seconds: shorter "
        "gives a gauge's mean over a short run more samples, at the cost of more scrapes.",
    )


class ExperimentSpec(_Section):
    """A whole experiment: what to load, how, against which service, swept over what."""

    name: str = Field(pattern=_NAME_RE, description="Experiment name: results/<name>/...")
    description: str = Field(default="", description="What the experiment asks.")
    locustfile: str = Field(description="Locustfile, relative to the spec file's folder.")
    duration_s: float = Field(gt=0, le=86_400, description="Measured load time of each run.")
    warmup_s: float = Field(
        default=0.0,
        ge=0,
        le=3_600,
        description="Load before the measured time; its requests are kept in requests.parquet "
        "but left out of summary.json.",
    )
    repeats: int = Field(default=1, ge=1, le=1_000, description="Runs of each sweep point.")
    seed: int = Field(default=0, ge=0, description="Base seed; repeat k of a point uses seed + k.")
    cooldown_s: float = Field(default=2.0, ge=0, le=3_600, description="Pause between runs.")
    load: LoadSpec = Field(default_factory=LoadSpec)
    scenario: dict[str, Scalar] = Field(
        default_factory=dict, description="Locustfile knobs, each passed as --key value."
    )
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Dotted spec field -> values; runs the cross product of all values.",
    )
    faults: list[FaultSpec] = Field(
        default_factory=list, description="The fault schedule: [[faults]] entries."
    )
    slo: SloSpec | None = Field(
        default=None, description="Steady-state hypothesis checked before and after the faults."
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec,
        description="Prometheus and Dask's performance report for each run (both off).",
    )

    @field_validator("locustfile")
    @classmethod
    def _locustfile_exists(cls, v: str, info: ValidationInfo) -> str:
        base = Path((info.context or {}).get("base_dir", "."))
        path = Path(v).expanduser()
        if not path.is_absolute():
            path = base / path
        path = path.resolve()
        if not path.is_file():
            raise ValueError(
                f"locustfile not found at {path}; give a path relative to the spec's folder"
            )
        if path.suffix != ".py":
            raise ValueError(f"locustfile {path} is not a .py file")
        return str(path)

    @field_validator("scenario")
    @classmethod
    def _knob_names(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        for key in v:
            if not _KNOB_RE.match(key):
                raise ValueError(f"scenario key {key!r}: use letters, digits, '_' or '-'")
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep_lists(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        known = field_paths(cls)
        for key, values in v.items():
            if not _sweepable(key, known):
                raise ValueError(
                    f"sweep key {key!r} is not a spec field; use a dotted path such as "
                    "'load.users', 'service.executor.kind' or 'scenario.<knob>'"
                )
            if not values:
                raise ValueError(f"sweep.{key!r} is an empty list; give at least one value")
        return v

    @field_validator("faults")
    @classmethod
    def _faults_fit(cls, v: list[FaultSpec], info: ValidationInfo) -> list[FaultSpec]:
        """Every fault falls inside the load, and each `set` gives a valid configuration."""
        data = info.data
        if "duration_s" not in data or "warmup_s" not in data or "service" not in data:
            return v  # already reported as their own errors
        load_s = data["warmup_s"] + data["duration_s"]
        base = data["service"].model_dump(mode="python")
        for i, fault in enumerate(v):
            if fault.at_s >= load_s:
                raise ValueError(
                    f"faults.{i}.at_s = {fault.at_s:g} is not within the load "
                    f"(warmup_s + duration_s = {load_s:g} s); make it earlier"
                )
            if fault.until_s is not None and fault.until_s > load_s:
                raise ValueError(
                    f"faults.{i}.until_s = {fault.until_s:g} is after the load ends "
                    f"({load_s:g} s); make it earlier or leave it out"
                )
            if fault.set is not None:
                merged = copy.deepcopy(base)
                for key, value in fault.set.items():
                    set_path(merged, key, value)
                try:
                    ServiceConfig.model_validate(merged)
                except ValidationError as exc:
                    problems = "; ".join(
                        f"faults.{i}.set.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                        f" (got {err.get('input')!r})"
                        for err in exc.errors()
                    )
                    raise ValueError(problems) from None
        return v

    @field_validator("slo")
    @classmethod
    def _slo_windows(cls, v: SloSpec | None, info: ValidationInfo) -> SloSpec | None:
        """With faults, there is load to check before the first and after the last one."""
        data = info.data
        faults: list[FaultSpec] = data.get("faults") or []
        if v is None or not faults or "duration_s" not in data or "warmup_s" not in data:
            return v
        load_s = data["warmup_s"] + data["duration_s"]
        first = min(range(len(faults)), key=lambda i: faults[i].at_s)
        if faults[first].at_s <= data["warmup_s"]:
            raise ValueError(
                f"faults.{first}.at_s = {faults[first].at_s:g} leaves no measured time before "
                f"the first fault to check [slo] in (warmup_s = {data['warmup_s']:g}); "
                "make it later"
            )
        last_end = max(f.end_s for f in faults)
        if last_end + v.recovery_s >= load_s:
            raise ValueError(
                f"slo.recovery_s = {v.recovery_s:g}: the faults end at {last_end:g} s, so "
                f"recovery leaves no time before the load ends ({load_s:g} s) to check [slo] "
                "after them; lengthen duration_s or shorten recovery_s"
            )
        return v

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data, every default filled in (TOML has no null)."""
        return _drop_none(self.model_dump(mode="json"))

    def to_toml(self) -> str:
        """The resolved spec as TOML text, which :func:`parse_spec` reads back unchanged."""
        return tomli_w.dumps(self.to_dict())


def field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every dotted field path of a model; a free table (a dict field) ends with ``.*``."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = prefix + name
        paths.add(path)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths |= field_paths(ann, path + ".")
        elif getattr(ann, "__origin__", None) is dict:
            paths.add(path + ".*")
    return paths


def _sweepable(key: str, known: set[str]) -> bool:
    """A field path, or any path inside a free table (``service.layers.delay.delay_ms``)."""
    if key == "sweep" or key.startswith("sweep."):
        return False
    if key in known:
        return True
    parts = key.split(".")
    return all(parts) and any(".".join(parts[:i]) + ".*" in known for i in range(1, len(parts)))


_SERVICE_PATHS = field_paths(ServiceConfig)
_SERVICE_SECTIONS = {
    name
    for name, field in ServiceConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


def _drop_none(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_none(v) for v in data]
    return data


def parse_spec(
    data: dict[str, Any], base_dir: str | Path = ".", source: str = "spec"
) -> ExperimentSpec:
    """Validate a mapping as an :class:`ExperimentSpec`; raise :class:`SpecError` naming fields."""
    try:
        return ExperimentSpec.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, source)) from None


def parse_overrides(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["a.b=1", ...]`` or ``{"a.b": 1}`` as a mapping of dotted keys to parsed values."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(
                f"override {item!r}: write it as KEY=VALUE, e.g. --set duration_s=5 "
                "or --set service.executor.kind=batched"
            )
        parsed[key] = parse_value(text.strip())
    return parsed


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted override set (``sweep.<dotted key>`` sets a sweep)."""
    result = copy.deepcopy(data)
    for key, value in overrides.items():
        try:
            if key.startswith("sweep.") and len(key) > len("sweep."):
                sweep = result.setdefault("sweep", {})
                if not isinstance(sweep, dict):
                    raise ConfigError(f"{key}: 'sweep' is a value, not a table")
                sweep[key[len("sweep.") :]] = value
            else:
                set_path(result, key, value)
        except ConfigError as exc:
            raise SpecError(f"override {key}={value!r}: {exc}") from None
    return result


def load_spec(
    path: str | Path, overrides: list[str] | dict[str, Any] | None = None
) -> ExperimentSpec:
    """Read a TOML spec, apply ``key=value`` overrides, and validate it (and every sweep point)."""
    p = Path(path)
    data = read_toml(p, "spec", SpecError)
    parsed = parse_overrides(overrides)
    data = apply_overrides(data, parsed)
    source = str(p)
    if parsed:
        source += " (with overrides " + ", ".join(f"{k}={v!r}" for k, v in parsed.items()) + ")"
    spec = parse_spec(data, p.resolve().parent, source)
    expand(spec)  # every sweep point must be valid before anything starts
    return spec


def expand(spec: ExperimentSpec) -> list[tuple[dict[str, Any], ExperimentSpec]]:
    """Each point of the sweep: its parameters and the resolved spec of that run (no sweep).

    Raises :class:`SpecError` naming the point and field when a combination is not valid.
    """
    keys = list(spec.sweep)
    base = spec.to_dict()
    base["sweep"] = {}
    points: list[tuple[dict[str, Any], ExperimentSpec]] = []
    for values in itertools.product(*(spec.sweep[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        data = copy.deepcopy(base)
        for key, value in params.items():
            try:
                set_path(data, key, value)
            except ConfigError as exc:
                raise SpecError(f"sweep point {params}: {exc}") from None
        label = "sweep point " + ", ".join(f"{k}={v!r}" for k, v in params.items())
        points.append((params, parse_spec(data, ".", label or "spec")))
    return points


def run_label(params: dict[str, Any]) -> str:
    """The parameter part of a run id: the last part of each swept key with its value."""
    lasts = [k.rsplit(".", 1)[-1] for k in params]
    parts = []
    for key, last in zip(params, lasts, strict=True):
        name = last if lasts.count(last) == 1 else key
        parts.append(f"{name}={_safe(params[key])}")
    return "-".join(parts)


def _safe(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9._=+]", "_", text)[:40]


def run_id(index: int, params: dict[str, Any], repeat: int) -> str:
    """``NNN-<parameters>-rK``, e.g. ``000-kind=direct-r0`` (``000-r0`` without a sweep)."""
    label = run_label(params)
    return f"{index:03d}-{label}-r{repeat}" if label else f"{index:03d}-r{repeat}"
