"""Lab 01's exercises on runs of known behaviour: references, blanks, wrong models, made-up runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rundirs import T0, make_requests

from exercises.cases import Case, check_cases
from exercises.runs import closed_loop_requests, lab_run, poisson_requests
from scalelab.analysis.load import Run, load_run
from scalelab.analysis.queueing import little_law
from scalelab.exercises.context import Prediction
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.params import Parameters
from scalelab.exercises.registry import get_lab

P = Parameters("lab01", {"rate": 40.0, "stall_s": 0.5, "arrivals": 100.0}, seed=0, smoke=True)
BEFORE, AFTER = 1779926000.0, 1779929000.0
LEVELS = (1, 2, 4, 8, 16, 32)


def usl(n: float, lam: float = 100.0, sigma: float = 0.05, kappa: float = 0.002) -> float:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lab01")
    even = make_requests(rate=40.0, duration_s=5.0, poisson=False, latency="fixed", mean_ms=5)
    stall = [(T0 + 2.0, "fault", "stall")]
    open_run = lab_run(
        root / "001-mode=open-r0",
        "latency_open_closed",
        even,
        settings={"faults": [{"at_s": 2.0, "stall": 0.5}], "load.rate": 40.0},
        params={"load.mode": "open"},
        events=stall,
    )
    closed_run = lab_run(
        root / "000-mode=closed-r0",
        "latency_open_closed",
        even,
        settings={"faults": [{"at_s": 2.0, "stall": 0.5}], "load.rate": 40.0},
        params={"load.mode": "closed"},
        events=stall,
    )
    faster = lab_run(
        root / "002-mode=open-r0",
        "latency_open_closed",
        make_requests(rate=50.0, duration_s=5.0, poisson=False, latency="fixed", mean_ms=5),
        settings={"faults": [{"at_s": 2.0, "stall": 0.5}], "load.rate": 50.0},
        params={"load.mode": "open"},
        events=stall,
    )
    # An infinite-server queue: Poisson arrivals at 100/s, exponential 200 ms in the service.
    little = lab_run(
        root / "little-r0",
        "little_law",
        poisson_requests(100.0, 60.0, mean_ms=200.0, seed=4),
        settings={"load.rate": 100.0},
    )
    little_80 = lab_run(
        root / "little80-r0",
        "little_law",
        poisson_requests(80.0, 60.0, mean_ms=200.0, seed=5),
        settings={"load.rate": 80.0},
    )
    # A 3 s run whose three gauge samples happen to sit low and steady ([9, 12, 12] against
    # a λW near 17): too few to judge by (seen in a SMOKE grading that failed λW).
    short = lab_run(
        root / "little-short-r0",
        "little_law",
        poisson_requests(100.0, 3.0, mean_ms=200.0, seed=8),
        settings={"load.rate": 100.0},
    )
    law = little_law(short)
    metrics = pd.read_parquet(short.path / "metrics.parquet")
    metrics = metrics[metrics["metric"] != "scalelab_in_flight"]
    low = pd.DataFrame(
        {
            "t": np.linspace(law.window[0] + 0.1, law.window[1] - 0.1, 3),
            "source": "service",
            "metric": "scalelab_in_flight",
            "labels": "",
            "value": [9.0, 12.0, 12.0],
        }
    )
    pd.concat([metrics, low], ignore_index=True).to_parquet(
        short.path / "metrics.parquet", index=False
    )
    rng = np.random.default_rng(6)
    sweep = []
    for rep in range(3):
        for i, n in enumerate(LEVELS):
            x = usl(n) * (1 + rng.normal(0, 0.02))
            sweep.append(
                lab_run(
                    root / "sweep" / f"{rep * len(LEVELS) + i:03d}-users={n}-r{rep}",
                    "usl_sweep",
                    closed_loop_requests(x, duration_s=2.0, seed=100 + 10 * rep + i),
                    params={"load.users": n},
                )
            )
    return {
        "open": open_run,
        "closed": closed_run,
        "faster": faster,
        "little": little,
        "little_80": little_80,
        "little_short": load_run(short.path),
        "sweep": sweep,
    }


def _cases(r: dict[str, Any]) -> list[Case]:
    from scalelab_instructor.lab01 import knee, replications, solution_p99_of_both

    def q1(role: str, name: str, value: Any, expect: str, says: str = "", **kw: Any) -> Case:
        prediction = Prediction(value, kw.pop("made", BEFORE), None, {})
        ctx = {"run": kw.pop("run", r["open"])}
        return Case("lab01.q1", role, name, None, ctx, P, expect, says, prediction=prediction)

    little: Run = r["little"]
    s = little.summary
    lam_w = s["throughput_rps"] * s["mean_ms"] / 1000
    short = r["little_short"].summary
    short_w = short["throughput_rps"] * short["mean_ms"] / 1000

    def q2(role: str, name: str, value: Any, expect: str, says: str = "", **ctx: Any) -> Case:
        return Case("lab01.q2", role, name, value, ctx or {"run": little}, P, expect, says)

    sweep: list[Run] = r["sweep"]
    knees = [knee(u, x) for u, x in replications(sweep).values()]
    mean = float(np.mean(knees))
    from scipy import stats

    half_t = stats.t.ppf(0.95, len(knees) - 1) * np.std(knees, ddof=1) / math.sqrt(len(knees))
    half_z = 1.645 * np.std(knees, ddof=1) / math.sqrt(len(knees))
    measured: dict[int, list[float]] = {}
    for users, rps in replications(sweep).values():
        for n, x in zip(users, rps, strict=True):
            measured.setdefault(n, []).append(x)
    best_level = max(measured, key=lambda n: float(np.mean(measured[n])))  # the wrong model's

    def q3(role: str, name: str, answer: Any, expect: str, says: str = "", **ctx: Any) -> Case:
        return Case("lab01.q3", role, name, answer, ctx or {"run": sweep}, P, expect, says)

    def averaged(le: Any, a: Any, b: Any) -> float:
        from scalelab_instructor.lab01 import histogram_quantile

        return (histogram_quantile(0.99, le, a) + histogram_quantile(0.99, le, b)) / 2

    def upper_bound(le: Any, a: Any, b: Any) -> float:
        counts = np.asarray(a, dtype=float) + np.asarray(b, dtype=float)
        i = int(np.searchsorted(counts, 0.99 * counts[-1]))
        return float(le[min(i, len(le) - 2)])

    def blank(le: Any, a: Any, b: Any) -> float:
        raise NotImplementedError

    return [
        q1("reference", "rate times stall", 40.0 * 0.5, "pass", "Measured"),
        q1("blank", "ellipsis", ..., "not answered"),
        q1("wrong model", "closed-loop users", 4.0, "fail", "closed loop"),
        q1("wrong model", "half", 10.0, "fail", "how many arrive"),
        q1("made-up context", "the closed run", 20.0, "fail", "this check reads", run=r["closed"]),
        q1("made-up context", "another rate", 20.0, "fail", "load.rate", run=r["faster"]),
        q1("made-up context", "predicted after the run", 20.0, "fail", "after run", made=AFTER),
        q2("reference", "lambda W", lam_w, "pass"),
        q2("short run", "three samples", short_w, "fail", "read 3 times", run=r["little_short"]),
        q2("blank", "ellipsis", ..., "not answered"),
        q2("wrong model", "median", s["throughput_rps"] * s["p50_ms"] / 1000, "fail", "median"),
        q2("wrong model", "lambda over W", s["throughput_rps"] / (s["mean_ms"] / 1000), "fail"),
        q2("wrong model", "concurrency ceiling", 2000.0, "fail"),
        q2("made-up context", "figures", lam_w, "fail", "mapping", run={"throughput_rps": 100.0}),
        q2("made-up context", "another rate", lam_w, "fail", "load.rate", run=r["little_80"]),
        q3("reference", "t interval", (mean, (mean - half_t, mean + half_t)), "pass"),
        q3("blank", "ellipses", (..., ...), "not answered"),
        q3("wrong model", "best level", (float(best_level), (10.0, 40.0)), "fail", "peaked"),
        q3(
            "wrong model",
            "normal interval",
            (mean, (mean - half_z, mean + half_z)),
            "fail",
            "Student's t",
        ),
        q3(
            "made-up context",
            "one repeat",
            (mean, (mean - half_t, mean + half_t)),
            "fail",
            "repeats",
            run=sweep[: len(LEVELS)],
        ),
        q3(
            "made-up context",
            "two levels",
            (mean, (mean - half_t, mean + half_t)),
            "fail",
            "three levels",
            run=[x for x in sweep if x.spec["load"]["users"] in (1, 2)],
        ),
        q3("made-up context", "made-up knee", (30.0, (25.0, 35.0)), "fail", "not the mean knee"),
        Case("lab01.q4", "reference", "merged quantile", solution_p99_of_both, {}, P, "pass"),
        Case("lab01.q4", "blank", "not implemented", blank, {}, P, "not answered"),
        Case("lab01.q4", "wrong model", "average of p99s", averaged, {}, P, "fail", "average"),
        Case("lab01.q4", "wrong model", "bucket bound", upper_bound, {}, P, "fail", "not the p99"),
        Case(
            "lab01.q4",
            "made-up context",
            "two arguments",
            lambda a, b: 0.0,
            {},
            P,
            "fail",
            "three arguments",
        ),
        Case(
            "lab01.q5",
            "reference",
            "model answer",
            "During the stall each closed-loop user "
            "waits for its stuck request instead of sending, so the requests it would have "
            "sent are never measured.",
            {},
            P,
            "needs review",
        ),
        Case("lab01.q5", "blank", "spaces", "   ", {}, P, "not answered"),
        Case("lab01.q5", "wrong model", "a number", 42, {}, P, "fail", "text"),
        Case(
            "lab01.q5",
            "made-up context",
            "with a run",
            "The closed loop waits for each answer "
            "before sending again, so during a stall it stops sending and records only a few "
            "slow requests, one per user.",
            {"run": r["open"]},
            P,
            "needs review",
        ),
    ]


ensure_hidden()


@pytest.fixture(scope="module")
def cases(runs: dict[str, Any]) -> list[Case]:
    return _cases(runs)


@pytest.mark.parametrize("exercise", [e.id for e in get_lab("lab01").exercises])
def test_exercise(exercise: str, cases: list[Case]) -> None:
    check_cases(exercise, cases)


def test_knee_beyond_the_sweep_is_infinite(tmp_path: Any) -> None:
    """A sweep that never turns down has no knee: math.inf, and an interval of infinities."""
    runs = []
    for rep in range(2):
        for i, n in enumerate((1, 2, 4, 8)):
            runs.append(
                lab_run(
                    tmp_path / f"{rep * 4 + i:03d}-users={n}-r{rep}",
                    "usl_sweep",
                    closed_loop_requests(50.0 * n, duration_s=4.0, seed=rep * 10 + i),
                    params={"load.users": n},
                )
            )
    inf = (math.inf, (math.inf, math.inf))
    assert check_one("lab01.q3", inf, {"run": runs}) == "pass"
    assert check_one("lab01.q3", (40.0, (30.0, 50.0)), {"run": runs}) == "fail"


def check_one(exercise: str, answer: Any, context: dict[str, Any]) -> str:
    from exercises.cases import judge

    return judge(Case(exercise, "", "", answer, context, P, "")).status
