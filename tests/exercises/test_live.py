"""The live step: import-path rules, and a component judged in the running service under load."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.exercises import get
from scalelab.exercises.answers import Snapshot
from scalelab.exercises.grading import Grader
from scalelab.exercises.live import LiveStep, ThroughputAtLeast, import_path, live_enabled

COMPONENTS = Path(__file__).parent / "fixtures" / "components"


class _InTest:
    pass


def test_import_path_of_a_module_class() -> None:
    path, folder = import_path(_InTest)
    assert path == f"{__name__}:_InTest"
    assert folder is not None and (folder / __name__.replace(".", "/")).with_suffix(".py").exists()


def test_scalelab_classes_need_no_extra_path() -> None:
    from scalelab.service.cache_policies import LRUPolicy

    assert import_path(LRUPolicy) == ("scalelab.service.cache_policies:LRUPolicy", None)


def test_notebook_classes_are_refused_with_the_fix() -> None:
    cls = type("Mine", (), {"__module__": "__main__"})
    with pytest.raises(ValueError, match="%%writefile"):
        import_path(cls)


def test_local_classes_are_refused() -> None:
    class Local:
        pass

    with pytest.raises(ValueError, match="top level"):
        import_path(Local)


def test_live_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALELAB_LIVE", "0")
    assert not live_enabled(None)
    assert live_enabled(True)
    monkeypatch.setenv("SCALELAB_LIVE", "1")
    assert live_enabled(None)
    assert not live_enabled(False)


def test_live_step_of_a_notebook_class_fails_before_any_run() -> None:
    cls = type("Mine", (), {"__module__": "__main__"})
    step = LiveStep(
        "service.executor.kind", "scenarios/executor_live.toml", "direct", ThroughputAtLeast(0.8)
    )
    verdict = step.run_here(cls, {})
    assert not verdict.passed
    assert "notebook cell" in verdict.message


def test_specs_resolve_to_the_course_scenarios() -> None:
    step = get("lab00.q5").live
    assert step is not None
    path = step.spec_path()
    assert path.name == "executor_live.toml" and path.parent.name == "scenarios" and path.is_file()


def _snapshot(qualname: str) -> type:
    file = COMPONENTS / "lab00_executors.py"
    return Snapshot("lab00_executors", qualname, str(file), file.read_text()).load()


@pytest.mark.integration
def test_an_executor_behind_a_lock_fails_the_live_step(
    tmp_path: Path, no_child_leaks: None
) -> None:
    """Right results, so the unit-level checks of its values pass; one request at a time, so in
    the service it cannot keep the workers busy, and the live step fails it."""
    grader = Grader(tmp_path)
    try:
        verdict = grader.live_step(get("lab00.q5"), _snapshot("LockedDirect"))
    finally:
        grader.close()
    assert not verdict.passed, verdict.message
    assert "it must reach 80%" in verdict.message
    mine, builtin = verdict.figures
    assert mine["component"] == "yours" and builtin["component"] == "direct"
    assert mine["throughput_rps"] < 0.5 * builtin["throughput_rps"], verdict.figures
