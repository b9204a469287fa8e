"""Configuration of the service: flags over the file, the token rule, and run-time changes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.config import ServiceConfig, load_config
from scalelab.errors import ConfigError
from scalelab.service.process import write_config_toml
from scalelab.service.server import is_loopback, resolve_config, resolve_token
from scalelab.service.state import ConfigRejected, ServiceState, deep_merge


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(
        config=None, host="127.0.0.1", port=8000, scheduler=None, workers=None, threads=None
    )
    base.update(kw)
    return argparse.Namespace(**base)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[cluster]\nworkers = 3\nthreads_per_worker = 2\n[executor]\nkind = "batched"\n'
    )
    config = resolve_config(_args(config=str(path), workers=1))
    assert config.cluster.workers == 1
    assert config.cluster.threads_per_worker == 2
    assert config.executor.kind == "batched"
    assert resolve_config(_args(scheduler="tcp://10.0.0.1:8786")).cluster.scheduler == (
        "tcp://10.0.0.1:8786"
    )


def test_bad_flag_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.workers"):
        resolve_config(_args(workers=0))
    with pytest.raises(ConfigError, match=r"cluster\.scheduler"):
        resolve_config(_args(scheduler="localhost:8786"))


def test_written_toml_reads_back_equal(tmp_path: Path) -> None:
    config = ServiceConfig.model_validate(
        {"executor": {"kind": "batched", "max_batch": 7}, "faults": {"error_rate": 0.25}}
    )
    assert config.cluster.scheduler is None  # None values must be dropped for TOML
    assert load_config(write_config_toml(config, tmp_path / "c.toml")) == config


def test_faults_section_validates() -> None:
    assert ServiceConfig().faults.error_rate == 0.0
    with pytest.raises(ValueError, match="error_rate"):
        ServiceConfig.model_validate({"faults": {"error_rate": 1.5}})
    with pytest.raises(ValueError, match="ingress_delay_ms"):
        ServiceConfig.model_validate({"faults": {"ingress_delay_ms": -1}})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALELAB_ADMIN_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"--host 0\.0\.0\.0.*--admin-token"):
        resolve_token("0.0.0.0", None)
    assert resolve_token("0.0.0.0", "s3cret") == "s3cret"
    assert resolve_token("127.0.0.1", None) is None
    monkeypatch.setenv("SCALELAB_ADMIN_TOKEN", "from-env")
    assert resolve_token("0.0.0.0", None) == "from-env"


def test_deep_merge_keeps_untouched_fields() -> None:
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 3}, {"a": {"y": 5}}) == {
        "a": {"x": 1, "y": 5},
        "b": 3,
    }


def test_change_is_validated_with_field_names() -> None:
    state = ServiceState(ServiceConfig())
    new = state.validate_change({"faults": {"error_rate": 0.5}, "executor": {"kind": "batched"}})
    assert new.faults.error_rate == 0.5 and new.executor.kind == "batched"
    assert new.admission == state.config.admission
    with pytest.raises(ConfigRejected) as info:
        state.validate_change({"executor": {"max_batch": 0}, "admission": {"bogus": 1}})
    fields = {e["field"] for e in info.value.errors}
    assert fields == {"executor.max_batch", "admission.bogus"}


def test_cluster_cannot_change_at_run_time() -> None:
    state = ServiceState(ServiceConfig())
    with pytest.raises(ConfigRejected, match=r"cluster\.workers.*restart"):
        state.validate_change({"cluster": {"workers": 5}})
    state.validate_change({"cluster": {"workers": state.config.cluster.workers}})  # unchanged: fine


def test_unloadable_executor_plugin_is_refused() -> None:
    state = ServiceState(ServiceConfig())
    with pytest.raises(ConfigRejected) as info:
        state.validate_change({"executor": {"kind": "no_such_module_abc:Exec"}})
    assert info.value.errors[0]["field"] == "executor.kind"
    assert "cannot import module" in info.value.message


def test_process_helper_imports_neither_dask_nor_the_app() -> None:
    code = (
        "import sys, scalelab.service.process\n"
        "heavy = ('dask', 'distributed', 'fastapi', 'uvicorn', 'locust', 'pandas')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
