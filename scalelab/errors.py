"""Errors a user can cause, each with a message that names the input and the fix."""

from __future__ import annotations


class ScaleLabError(Exception):
    """Base class for errors scalelab reports to its user without a traceback."""


class ConfigError(ScaleLabError):
    """A service configuration (file, ``--set`` or admin API body) is not valid."""


class SpecError(ScaleLabError):
    """An experiment spec is not valid; raised before any process starts."""


class PluginError(ScaleLabError):
    """A user class named by ``module:Class`` cannot be loaded or does not fit its stage.

    ``field`` is the configuration field at fault (``executor.kind``,
    ``layers.delay.ms``...), when known.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RunError(ScaleLabError):
    """A run could not start or its system under test stopped working."""
