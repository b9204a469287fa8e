"""The Grafana dashboard in monitoring/grafana/ is one Grafana 10 can import and provision.

Its queries are evaluated against a real run's Prometheus in test_monitored_run.py; here,
its shape: what Grafana requires of a dashboard, of each panel and of each target.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "monitoring" / "grafana" / "scalelab.json"
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "text", "heatmap"}
UNITS = {"reqps", "percentunit", "s", "short", "bytes", "ms", "percent"}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_the_dashboard_has_what_grafana_requires(dashboard: dict[str, Any]) -> None:
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time", "version"):
        assert key in dashboard, key
    assert dashboard["schemaVersion"] >= 36  # Grafana 9.x and 10.x dashboards
    assert dashboard.get("id") is None  # importable anywhere: Grafana assigns the id
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert set(dashboard["time"]) == {"from", "to"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["run"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_panel_is_placed_and_queries_prometheus(dashboard: dict[str, Any]) -> None:
    ids, cells = set(), set()
    variables = {v["name"] for v in dashboard["templating"]["list"]} | BUILTIN_VARIABLES
    panels = dashboard["panels"]
    assert len([p for p in panels if p["type"] != "row"]) >= 15
    for panel in panels:
        title = panel.get("title")
        assert title and panel["type"] in PANEL_TYPES, panel
        assert isinstance(panel["id"], int) and panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] >= 1 and grid["x"] + grid["w"] <= 24, title
        assert grid["h"] >= 1 and grid["y"] >= 0, title
        # panels never overlap on Grafana's 24-column grid
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{title} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, title
        assert panel.get("description"), f"{title}: say what the panel shows"
        targets = panel["targets"]
        assert targets, title
        refs = [t["refId"] for t in targets]
        assert len(set(refs)) == len(refs), title
        for target in targets:
            assert target["datasource"] == panel["datasource"]
            expr = target["expr"]
            assert expr.strip(), title
            used = set(re.findall(r"\$\{?(\w+)", expr))
            assert used <= variables, f"{title}: undefined variables {used - variables}"
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
