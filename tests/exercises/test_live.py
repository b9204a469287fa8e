"""The live step's import-path rules (the load run itself is in the integration test)."""

from __future__ import annotations

import pytest

from scalelab.exercises.live import LiveStep, import_path, live_enabled


class _InTest:
    pass


def test_import_path_of_a_module_class() -> None:
    path, folder = import_path(_InTest)
    assert path == f"{__name__}:_InTest"
    assert folder is not None and (folder / __name__.replace(".", "/")).with_suffix(".py").exists()


def test_scalelab_classes_need_no_extra_path() -> None:
    from scalelab.exercises.lab00 import SolutionDirectExecutor

    assert import_path(SolutionDirectExecutor) == (
        "scalelab.exercises.lab00:SolutionDirectExecutor",
        None,
    )


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
    outcome = LiveStep(field="service.executor.kind").run(cls, {})
    assert not outcome.ok
    assert "notebook cell" in outcome.message


def test_default_spec_resolves_to_the_checkout() -> None:
    path = LiveStep(field="service.executor.kind").spec_path()
    assert path.name == "quickstart.toml" and path.parent.name == "scenarios"
