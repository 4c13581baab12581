"""A run's two logs: `train.log` for people (what the run did, in words: the Train tab's log
and `runs show` read it) and `debug.log` for everything else (library warnings such as
transformers' FutureWarnings, the bitsandbytes kernel notice, the worker process's own
stdout and stderr, full tracebacks, the raw telemetry numbers). Users read the first; a bug
report attaches the second."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_FILE = "train.log"
DEBUG_FILE = "debug.log"

log = logging.getLogger("workbench.train")
debug = logging.getLogger("workbench.debug")
debug.propagate = False  # never onto a terminal or into the people's log


@contextmanager
def run_logs(out: Path) -> Iterator[None]:
    """Send the run logger to `out/train.log` and the debug logger and Python warnings to
    `out/debug.log` while the block runs."""
    out.mkdir(parents=True, exist_ok=True)
    people = logging.FileHandler(out / LOG_FILE, encoding="utf-8")
    people.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    details = logging.FileHandler(out / DEBUG_FILE, encoding="utf-8")
    details.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s",
                                           "%H:%M:%S"))
    warnings_log = logging.getLogger("py.warnings")
    log.addHandler(people)
    log.setLevel(logging.INFO)
    debug.addHandler(details)
    debug.setLevel(logging.DEBUG)
    warnings_log.addHandler(details)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handler in ((log, people), (debug, details), (warnings_log, details)):
            logger.removeHandler(handler)
        people.close()
        details.close()
