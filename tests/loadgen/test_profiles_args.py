"""Load profiles and the typed load options read from Locust's arguments."""

from __future__ import annotations

from argparse import Namespace

import pytest

from scalelab.errors import ScaleLabError
from scalelab.loadgen.args import LoadOptions
from scalelab.loadgen.profiles import profile_for, ramp_profile, spike_profile, step_profile


def test_step_profile() -> None:
    f = step_profile(0.25, 2.0, 10.0)
    assert [f(t) for t in (0, 1.9, 2.0, 4.5, 6.1, 9.9)] == [0.25, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert f(10.0) is None


def test_ramp_and_spike_profiles() -> None:
    ramp = ramp_profile(4.0, None)
    assert ramp(0) == 0 and ramp(2) == 0.5 and ramp(100) == 1.0
    spike = spike_profile(0.2, 3.0, 2.0, 8.0)
    assert [spike(t) for t in (0, 2.9, 3.0, 4.9, 5.0)] == [0.2, 0.2, 1.0, 1.0, 0.2]
    assert spike(8.0) is None


def test_profile_for_step_uses_users() -> None:
    opts = LoadOptions(shape="step", step_users=2, step_time=1.0, users=10, run_time=5.0)
    f = profile_for(opts)
    assert f is not None
    assert round(10 * f(0.5)) == 2 and round(10 * f(2.5)) == 6 and round(10 * f(4.5)) == 10
    assert profile_for(LoadOptions()) is None


def test_options_from_namespace_with_locust_names_and_strings() -> None:
    ns = Namespace(
        results_dir="out",
        load_mode="open",
        rate="250",  # the web UI sends strings
        arrival="constant",
        max_concurrency="64",
        seed=5,
        num_users=2,
        run_time=30,
        host="http://x",
    )
    opts = LoadOptions.from_namespace(ns)
    assert opts.open_loop
    assert opts.rate == 250.0 and opts.max_concurrency == 64 and opts.seed == 5
    assert opts.users == 2 and opts.run_time == 30.0
    assert LoadOptions.from_namespace(None) == LoadOptions()


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("rate", 0.0, "--rate"),
        ("max_concurrency", 0, "--max-concurrency"),
        ("load_mode", "half-open", "--load-mode"),
        ("spike_base", 1.5, "--spike-base"),
        ("step_time", 0.0, "--step-time"),
    ],
)
def test_invalid_options_name_the_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(ScaleLabError, match=flag):
        LoadOptions.from_namespace(Namespace(**{field: value}))


def test_unparsable_string_names_the_flag() -> None:
    with pytest.raises(ScaleLabError, match="--rate"):
        LoadOptions.from_namespace(Namespace(rate="fast"))
