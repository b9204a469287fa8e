"""Closed-loop load shapes (step, ramp, spike) as Locust ``LoadTestShape`` classes.

``--shape step|ramp|spike`` installs one of these at start-up; the peak is
``-u`` users and the run ends after ``-t``. The classes are marked abstract so
that importing them into a locustfile never turns a shape on by accident
(Locust runs every non-abstract shape class it finds in a locustfile). To use
one directly, subclass it in the locustfile: the subclass is not abstract, and
reads its parameters from the same arguments.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from scalelab.errors import ScaleLabError
from scalelab.loadgen.args import LoadOptions
from scalelab.loadgen.profiles import Profile, profile_for


class ProfileShape(LoadTestShape):
    """A shape that follows a :mod:`scalelab.loadgen.profiles` profile, peak ``-u`` users."""

    abstract = True
    use_common_options = True  # -u, -r and -t are read, not ignored
    shape_name = "none"

    def __init__(self) -> None:
        super().__init__()
        self._profile: Profile | None = None
        self._peak = 1
        self._spawn_rate = 1.0

    def _setup(self) -> None:
        options = self.runner.environment.parsed_options if self.runner is not None else None
        opts = LoadOptions.from_namespace(options)
        opts = LoadOptions(**{**opts.__dict__, "shape": self.shape_name})
        self._profile = profile_for(opts)
        self._peak = max(opts.users, 1)
        spawn_rate = getattr(options, "spawn_rate", None)
        self._spawn_rate = float(spawn_rate) if spawn_rate else float(self._peak)

    def reset_time(self) -> None:
        """Restart the shape's clock (Locust calls this when a test starts)."""
        super().reset_time()
        self._profile = None

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate now, or ``None`` once ``-t`` has passed."""
        if self._profile is None:
            self._setup()
        assert self._profile is not None
        fraction = self._profile(self.get_run_time())
        if fraction is None:
            return None
        return round(self._peak * fraction), self._spawn_rate


class StepShape(ProfileShape):
    """Add ``--step-users`` users every ``--step-time`` seconds up to ``-u``."""

    abstract = True
    shape_name = "step"


class RampShape(ProfileShape):
    """Grow linearly to ``-u`` users over ``--ramp-time`` seconds, then hold."""

    abstract = True
    shape_name = "ramp"


class SpikeShape(ProfileShape):
    """Hold ``--spike-base`` of ``-u``, spike to ``-u`` at ``--spike-at`` for ``--spike-time``."""

    abstract = True
    shape_name = "spike"


SHAPES: dict[str, type[ProfileShape]] = {"step": StepShape, "ramp": RampShape, "spike": SpikeShape}


def shape_by_name(name: str) -> type[Any]:
    """The shape class for ``--shape NAME``."""
    try:
        return SHAPES[name]
    except KeyError:
        raise ScaleLabError(f"--shape {name!r}: use one of {', '.join(SHAPES)} or none") from None
