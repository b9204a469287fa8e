"""The typed service configuration: defaults, TOML loading, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.config import (
    ServiceConfig,
    get_path,
    load_config,
    parse_config,
    parse_value,
    set_path,
)
from scalelab.errors import ConfigError


def test_defaults_are_valid() -> None:
    cfg = ServiceConfig()
    assert cfg.executor.kind == "direct"
    assert cfg.cluster.scheduler is None
    assert cfg.admission.max_in_flight > 0


def test_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "svc.toml"
    path.write_text('[executor]\nkind = "batched"\nmax_batch = 50\n[cluster]\nworkers = 1\n')
    cfg = load_config(path)
    assert cfg.executor.kind == "batched"
    assert cfg.executor.max_batch == 50
    assert cfg.cluster.workers == 1


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "svc.toml"
    path.write_text("[executor]\nmax_bacth = 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "executor.max_bacth" in str(err.value)
    assert "unknown key" in str(err.value)


def test_wrong_type_and_range_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"executor": {"max_wait_ms": "soon"}, "cluster": {"workers": 0}})
    text = str(err.value)
    assert "executor.max_wait_ms" in text
    assert "cluster.workers" in text


def test_bad_executor_kind_and_scheduler() -> None:
    with pytest.raises(ConfigError, match="executor.kind"):
        parse_config({"executor": {"kind": "turbo"}})
    with pytest.raises(ConfigError, match="cluster.scheduler"):
        parse_config({"cluster": {"scheduler": "localhost:8786"}})
    assert parse_config({"executor": {"kind": "mymod:MyExec"}}).executor.kind == "mymod:MyExec"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[executor\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_dotted_paths() -> None:
    data: dict = {}
    set_path(data, "service.executor.kind", "batched")
    assert get_path(data, "service.executor.kind") == "batched"
    with pytest.raises(KeyError):
        get_path(data, "service.cache")
    set_path(data, "x", 1)
    with pytest.raises(ConfigError, match="not a table"):
        set_path(data, "x.y", 2)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ('"a"', "a"),
        ("batched", "batched"),
        ("[1, 2]", [1, 2]),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value
