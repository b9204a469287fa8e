"""A tiny real HTTP server for the load generator's tests (no Dask, no service).

Endpoints: ``/ping``; ``/slow?ms=X`` (sleeps); ``/fail`` (always 500);
``/headers`` (sets the headers the recorder captures); and stand-ins for the
task service's ``/task/cpu`` and ``/task/io?ms=X`` so scenarios run against it.
Run as ``python app_server.py PORT``.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from fastapi import FastAPI, Response

app = FastAPI()

HEADERS = {
    "X-Worker": "tcp://127.0.0.1:4242",
    "X-Batch-Size": "7",
    "X-Cache": "hit",
    "X-Partition": "p3",
    "X-Attempts": "2",
}


@app.get("/ping")
async def ping() -> dict[str, bool]:
    """The cheapest answer."""
    return {"ok": True}


@app.get("/slow")
async def slow(ms: float = 100.0) -> dict[str, float]:
    """Answer after ``ms`` milliseconds."""
    await asyncio.sleep(ms / 1000.0)
    return {"ms": ms}


@app.get("/fail")
async def fail() -> Response:
    """Always a server error."""
    return Response("broken on purpose", status_code=500)


@app.get("/headers")
async def headers() -> Response:
    """An answer with every header the recorder captures."""
    return Response("0123456789", headers=HEADERS)


@app.get("/task/cpu")
async def task_cpu(units: int = 1) -> Response:
    """Stand-in for the service's CPU task."""
    return Response(f'{{"units": {units}}}', headers={"X-Worker": "w1", "X-Batch-Size": "1"})


@app.get("/task/io")
async def task_io(ms: float = 10.0) -> Response:
    """Stand-in for the service's I/O task: sleeps ``ms``."""
    await asyncio.sleep(ms / 1000.0)
    return Response(f'{{"ms": {ms}}}', headers={"X-Worker": "w2", "X-Batch-Size": "1"})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
