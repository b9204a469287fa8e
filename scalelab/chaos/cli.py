"""``scalelab fault ...``: the faults of a running ``scalelab serve``, from the command line.

    scalelab fault workers                                   # the workers, with pids and hosts
    scalelab fault start worker_kill worker=0 restart=false  # KEY=VALUE parameters (TOML values)
    scalelab fault start worker_pause worker=1 --for 3       # ends by itself after 3 s
    scalelab fault start task workers=[0] delay_ms=50 error_rate=0.1
    scalelab fault start network link=scheduler toxic=down   # needs chaos.proxy
    scalelab fault list
    scalelab fault end f3                                    # or: scalelab fault end all

``--url`` (default http://127.0.0.1:8000) names the service; the admin token,
when it has one, comes from ``--token`` or ``SCALELAB_ADMIN_TOKEN``.
``scalelab proxy`` runs the fault proxy on its own (Toxiproxy's API).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from scalelab.errors import ConfigError

TOKEN_ENV = "SCALELAB_ADMIN_TOKEN"


def add_parsers(sub: Any) -> None:
    """``scalelab fault`` and ``scalelab proxy`` subcommands."""
    fault = sub.add_parser("fault", help="start, end and list faults of a running service")
    fault.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    fault.add_argument("--token", help=f"admin token (default: ${TOKEN_ENV})")
    verbs = fault.add_subparsers(dest="fault_command", required=True)
    start = verbs.add_parser("start", help="start a fault: KIND [KEY=VALUE ...]")
    start.add_argument(
        "kind",
        help="worker_kill, worker_close, worker_pause, worker_churn, task, network or redis_stop",
    )
    start.add_argument("params", nargs="*", metavar="KEY=VALUE")
    start.add_argument(
        "--for",
        dest="duration",
        type=float,
        metavar="SECONDS",
        help="end the fault after this long",
    )
    end = verbs.add_parser("end", help="end a fault by id, or all of them")
    end.add_argument("id", help="the fault's id (from 'list' or 'start'), or 'all'")
    verbs.add_parser("list", help="every fault with its start and end")
    verbs.add_parser("workers", help="the cluster's workers")
    verbs.add_parser("network", help="the fault proxy's links and toxics")
    fault.set_defaults(func=fault_from_args)

    proxy = sub.add_parser("proxy", help="run the fault proxy alone (Toxiproxy's HTTP API)")
    proxy.add_argument("--host", default="127.0.0.1")
    proxy.add_argument("--port", type=int, default=8474)
    proxy.set_defaults(func=proxy_from_args)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["worker=0", "restart=false"]`` as ``{"worker": 0, "restart": False}``."""
    from scalelab.config import parse_value

    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item!r}: write parameters as KEY=VALUE, e.g. worker=0")
        params[key.strip()] = parse_value(text.strip())
    return params


def fault_from_args(args: argparse.Namespace) -> int:
    """Run one ``scalelab fault`` verb; print the service's answer as JSON."""
    import httpx

    token = args.token or os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = args.url.rstrip("/")
    verb = args.fault_command
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
            if verb == "start":
                body: dict[str, Any] = {"kind": args.kind, "params": parse_params(args.params)}
                if args.duration is not None:
                    body["duration_s"] = args.duration
                response = client.post("/admin/faults", json=body)
            elif verb == "end":
                path = "/admin/faults" if args.id == "all" else f"/admin/faults/{args.id}"
                response = client.delete(path)
            elif verb == "list":
                response = client.get("/admin/faults")
            else:
                response = client.get(f"/admin/{verb}")
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"--url {url}: no service answers there ({exc}); start scalelab serve or pass its --url"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    if response.status_code >= 400:
        detail = body.get("detail", body) if isinstance(body, dict) else body
        print(f"scalelab fault {verb}: HTTP {response.status_code}: {detail}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2))
    return 0


def proxy_from_args(args: argparse.Namespace) -> int:
    """Run the fault proxy in this process until Ctrl-C."""
    from scalelab.chaos.proxy import main

    print(f"scalelab proxy: Toxiproxy's API on http://{args.host}:{args.port}", flush=True)
    return main(["--host", args.host, "--port", str(args.port)])
