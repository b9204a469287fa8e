"""Where the logs of the grader's live cluster go: files beside the live runs.

The live steps run on a LocalCluster whose workers are threads of the grading
process, so their lines (the JSON task log, and Dask's own, such as a
traceback for every task a student's breaker lets fail) would otherwise fill
the terminal that shows the grading's progress. :class:`LiveLogs` sends them to
``<out>/live/tasks.log`` and ``<out>/live/cluster.log`` while it is open, and
gives Dask's loggers their handlers back when it closes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO

DASK_LOGGERS = ("distributed", "distributed.client", "distributed.gc", "tornado", "bokeh")
"""The loggers Dask configures with a handler of their own (they do not propagate)."""


class LiveLogs:
    """The task log and Dask's logs of the live cluster, in files under ``folder``."""

    def __init__(self, folder: Path) -> None:
        from scalelab.service.logs import TASK_LOGGER, json_logger

        folder.mkdir(parents=True, exist_ok=True)
        self.tasks: IO[str] = (folder / "tasks.log").open("a")
        json_logger(TASK_LOGGER, self.tasks)
        self.cluster = logging.FileHandler(folder / "cluster.log")
        self.cluster.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(message)s"))
        self.saved: dict[str, list[logging.Handler]] = {}
        for name in DASK_LOGGERS:
            logger = logging.getLogger(name)
            self.saved[name] = list(logger.handlers)
            for handler in self.saved[name]:
                logger.removeHandler(handler)
            logger.addHandler(self.cluster)

    def close(self) -> None:
        """Flush and close both files; Dask's loggers write where they did before."""
        from scalelab.service.logs import TASK_LOGGER

        logger = logging.getLogger(TASK_LOGGER)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        self.tasks.close()
        for name, handlers in self.saved.items():
            dask_logger = logging.getLogger(name)
            dask_logger.removeHandler(self.cluster)
            for handler in handlers:
                dask_logger.addHandler(handler)
        self.cluster.close()
