"""Experiment specs: every kind of bad spec fails before anything starts, naming the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from scalelab.errors import SpecError
from scalelab.experiment.locust_command import locust_args, run_time_s
from scalelab.experiment.spec import (
    ExperimentSpec,
    expand,
    load_spec,
    parse_overrides,
    parse_spec,
    run_id,
)

BASE = """
name = "demo"
locustfile = "lf.py"
duration_s = 5

[load]
users = 4

[scenario]
endpoint = "cpu"
units = 100

[service.executor]
kind = "direct"
"""


def _write(folder: Path, text: str = BASE, name: str = "spec.toml") -> Path:
    (folder / "lf.py").write_text("# a locustfile\n")
    path = folder / name
    path.write_text(text)
    return path


def test_minimal_spec_fills_defaults_and_resolves_locustfile(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path))
    assert spec.locustfile == str((tmp_path / "lf.py").resolve())
    assert spec.repeats == 1 and spec.warmup_s == 0 and spec.seed == 0
    assert spec.load.mode == "closed" and spec.load.users == 4
    assert spec.service.executor.kind == "direct"
    assert spec.service.cluster.workers == 2  # a ServiceConfig default
    assert spec.scenario == {"endpoint": "cpu", "units": 100}


def test_locustfile_is_relative_to_the_spec_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "specs"
    sub.mkdir()
    path = _write(sub)
    monkeypatch.chdir(tmp_path)
    assert load_spec(path).locustfile == str((sub / "lf.py").resolve())


@pytest.mark.parametrize(
    ("extra", "field", "hint"),
    [
        ('colour = "blue"\n', "colour", "unknown key"),
        ("[load]\nusers = 4\nuserz = 3\n", "load.userz", "unknown key"),
        ("[service.executor]\nkind = 'direct'\nmax_batchh = 3\n", "service.executor", "unknown"),
    ],
)
def test_unknown_keys_are_named(tmp_path: Path, extra: str, field: str, hint: str) -> None:
    text = BASE
    if extra.startswith("[load]"):
        text = text.replace("[load]\nusers = 4\n", extra)
    elif extra.startswith("[service.executor]"):
        text = text.replace('[service.executor]\nkind = "direct"\n', extra)
    else:
        text = extra + text
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, text))
    assert field in str(err.value) and hint in str(err.value)


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"duration_s: .*valid number"):
        load_spec(_write(tmp_path, BASE.replace("duration_s = 5", 'duration_s = "long"')))
    with pytest.raises(SpecError, match=r"load.users"):
        load_spec(_write(tmp_path, BASE.replace("users = 4", "users = 0")))


def test_missing_locustfile_names_the_field_and_path(tmp_path: Path) -> None:
    text = BASE.replace('"lf.py"', '"nowhere.py"')
    with pytest.raises(SpecError, match=r"locustfile: .*nowhere.py.*relative to the spec"):
        load_spec(_write(tmp_path, text))


def test_missing_required_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"duration_s: Field required"):
        load_spec(_write(tmp_path, BASE.replace("duration_s = 5\n", "")))


def test_bad_sweeps_fail_naming_the_key(tmp_path: Path) -> None:
    unknown = BASE + '\n[sweep]\n"load.userz" = [1, 2]\n'
    with pytest.raises(SpecError, match=r"sweep: .*'load.userz' is not a spec field"):
        load_spec(_write(tmp_path, unknown))
    empty = BASE + '\n[sweep]\n"load.users" = []\n'
    with pytest.raises(SpecError, match=r"load.users.*empty list"):
        load_spec(_write(tmp_path, empty))
    invalid_point = BASE + '\n[sweep]\n"service.executor.kind" = ["direct", "warp"]\n'
    with pytest.raises(SpecError, match=r"sweep point service.executor.kind='warp'"):
        load_spec(_write(tmp_path, invalid_point))


def test_open_loop_needs_a_rate(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="load.rate"):
        load_spec(_write(tmp_path), ["load.mode=open"])
    spec = load_spec(_write(tmp_path), ["load.mode=open", "load.rate=50"])
    assert spec.load.rate == 50


def test_scenario_values_must_be_scalars(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="scenario.units"):
        load_spec(_write(tmp_path, BASE.replace("units = 100", "units = [1, 2]")))


def test_shape_params_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spike_height is not a shape parameter"):
        load_spec(_write(tmp_path), ["load.shape=spike", "load.shape_params.spike_height=3"])
    spec = load_spec(_write(tmp_path), ["load.shape=step", "load.shape_params.step_time=2"])
    assert spec.load.shape_params == {"step_time": 2}


def test_overrides_apply_before_validation_and_name_themselves(tmp_path: Path) -> None:
    path = _write(tmp_path)
    spec = load_spec(path, ["duration_s=3", "service.executor.kind=batched", "scenario.units=7"])
    assert spec.duration_s == 3
    assert spec.service.executor.kind == "batched"
    assert spec.scenario["units"] == 7
    spec = load_spec(path, {"load.users": 9})
    assert spec.load.users == 9
    with pytest.raises(SpecError, match=r"load.userz=3.*\n.*load.userz: unknown key"):
        load_spec(path, ["load.userz=3"])
    with pytest.raises(SpecError, match=r"override 'users': write it as KEY=VALUE"):
        load_spec(path, ["users"])
    with pytest.raises(SpecError, match=r"override duration_s.units=1: .*'duration_s' is a value"):
        load_spec(path, ["duration_s.units=1"])


def test_override_can_set_a_sweep(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path), ['sweep.service.executor.kind=["direct", "batched"]'])
    assert spec.sweep == {"service.executor.kind": ["direct", "batched"]}
    assert parse_overrides(["a.b=[1, 2]", "c=text", "d=true"]) == {
        "a.b": [1, 2],
        "c": "text",
        "d": True,
    }


def test_sweep_expands_to_the_cross_product(tmp_path: Path) -> None:
    text = BASE + '\n[sweep]\n"service.executor.kind" = ["direct", "batched"]\n'
    text += '"load.users" = [1, 8]\n"scenario.units" = [5]\n'
    spec = load_spec(_write(tmp_path, text))
    points = expand(spec)
    assert len(points) == 4
    seen = {(p["service.executor.kind"], p["load.users"]) for p, _ in points}
    assert seen == {("direct", 1), ("direct", 8), ("batched", 1), ("batched", 8)}
    for params, run_spec in points:
        assert run_spec.service.executor.kind == params["service.executor.kind"]
        assert run_spec.load.users == params["load.users"]
        assert run_spec.scenario["units"] == 5
        assert run_spec.sweep == {}
    assert run_id(3, points[0][0], 1) == "003-kind=direct-users=1-units=5-r1"
    assert run_id(0, {}, 0) == "000-r0"
    # Two keys with the same last part keep their whole dotted names.
    assert run_id(1, {"a.x": 1, "b.x": 2}, 0) == "001-a.x=1-b.x=2-r0"


def test_no_sweep_is_one_point(tmp_path: Path) -> None:
    points = expand(load_spec(_write(tmp_path)))
    assert len(points) == 1 and points[0][0] == {}


def test_resolved_toml_round_trips_with_every_default(tmp_path: Path) -> None:
    text = BASE + '\n[sweep]\n"load.users" = [1, 2]\n'
    spec = load_spec(_write(tmp_path, text))
    toml_text = spec.to_toml()
    data = tomllib.loads(toml_text)
    assert data["service"]["cluster"]["threads_per_worker"] == 1  # a default, written out
    assert data["load"]["max_concurrency"] == 1000
    assert data["cooldown_s"] == spec.cooldown_s
    back = parse_spec(data, "/nonexistent", "round trip")  # locustfile is absolute now
    assert back == spec
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "spec.toml").write_text(toml_text)
    assert load_spec(other / "spec.toml") == spec


def test_locust_command_line(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path), ["warmup_s=1.5", "load.processes=2"])
    argv = locust_args(spec, "http://127.0.0.1:9", tmp_path / "run")
    joined = " ".join(argv)
    assert "locust" in argv[:3] and "--headless" in argv
    assert run_time_s(spec) == 7 and "-t 7s" in joined
    assert "-u 4" in joined and "--processes 2" in joined
    assert "--load-mode closed" in joined and "--wait-mode none" in joined
    assert f"--results-dir {(tmp_path / 'run').resolve()}" in joined
    assert "--endpoint cpu" in joined and "--units 100" in joined
    knobs = load_spec(_write(tmp_path), ["scenario.io_seeded=true", "scenario.io_local=false"])
    argv = locust_args(knobs, "http://127.0.0.1:9", tmp_path)
    assert argv[-1] == "--io-seeded" and "--io-local" not in argv
    open_spec = load_spec(_write(tmp_path), ["load.mode=open", "load.rate=200", "seed=4"])
    joined = " ".join(locust_args(open_spec, "http://127.0.0.1:9", tmp_path))
    assert "-u 1" in joined and "--rate 200" in joined and "--arrival poisson" in joined
    assert "--seed 4" in joined and "--wait-mode" not in joined


def test_spec_models_forbid_extra_everywhere() -> None:
    with pytest.raises(Exception, match="extra"):
        ExperimentSpec.model_validate(
            {"name": "x", "locustfile": __file__, "duration_s": 1, "load": {"bogus": 1}}
        )
