"""The answer channel: how a kernel under grading hands its answers (never verdicts) to the grader.

The grader names a file in ``SCALELAB_ANSWER_CHANNEL`` when it starts the
student's kernel. Every ``check``/``predict`` appends one JSON line to it: the
exercise, the call, the answer and its context as :mod:`.answers` dumps them,
and the kernel's clock. After each cell the grader reads the new lines and
stamps them with the cell's index and its own clock, which the kernel cannot
touch; what the kernel says about its own verdict is not even written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from scalelab.exercises import answers
from scalelab.exercises.context import Stamp

CHANNEL_ENV = "SCALELAB_ANSWER_CHANNEL"

Call = Literal["check", "predict"]


def active() -> bool:
    """True when this process runs under the grader."""
    return bool(os.environ.get(CHANNEL_ENV))


def send(call: Call, exercise_id: str, answer: Any, context: dict[str, Any]) -> None:
    """Append one call to the channel (does nothing outside grading)."""
    path = os.environ.get(CHANNEL_ENV)
    if not path:
        return
    record = {
        "call": call,
        "id": exercise_id,
        "answer": answers.dump(answer),
        "context": {k: answers.dump(v) for k, v in context.items()},
        "time": time.time(),
    }
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


@dataclass
class Record:
    """One call read back by the grader, with the grader's stamp."""

    call: Call
    exercise_id: str
    answer: Any
    context: dict[str, Any]
    kernel_time: float
    stamp: Stamp


class Reader:
    """Reads what a kernel appended since the last read, and stamps it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.records: list[Record] = []

    def read(self, stamp: Stamp) -> list[Record]:
        """Records written since the last call, stamped ``stamp``."""
        if not self.path.exists():
            return []
        with self.path.open() as f:
            f.seek(self.offset)
            text = f.read()
        complete, _, _partial = text.rpartition("\n")
        if not complete:
            return []
        self.offset += len(complete.encode()) + 1
        new = []
        for line in complete.splitlines():
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict) or not {"call", "id", "answer", "context"} <= set(raw):
                    continue  # not a call's record (a verdict someone wrote, say): ignored
                record = Record(
                    call="predict" if raw.get("call") == "predict" else "check",
                    exercise_id=str(raw["id"]),
                    answer=answers.load(raw.get("answer")),
                    context={str(k): answers.load(v) for k, v in raw.get("context", {}).items()},
                    kernel_time=float(raw.get("time", 0.0)),
                    stamp=stamp,
                )
            except (ValueError, KeyError, TypeError):
                continue
            new.append(record)
        self.records.extend(new)
        return new
