"""The progress callback long core operations report to: (fraction done 0..1, message).
The CLI prints it with an ETA (`TerminalProgress`), the UI forwards it to gr.Progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

Progress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    return None


def stages(progress: Progress, weights: Sequence[float]) -> Callable[[int], Progress]:
    """One bar over consecutive stages: stage i (0-based), given `weights[i]` of the bar,
    reports its own 0..1 and the bar moves through its part. A stage of weight 0 is silent."""
    total = sum(weights) or 1.0
    starts = [sum(weights[:i]) / total for i in range(len(weights))]

    def stage(i: int) -> Progress:
        def call(fraction: float, message: str) -> None:
            if weights[i] > 0:
                progress(min(1.0, starts[i] + weights[i] / total * fraction), message)
        return call

    return stage


def eta_text(elapsed: float, fraction: float) -> str:
    """'ETA 1m 05s' from the time so far, assuming the rest goes at the same pace; '' until
    there is something to extrapolate from."""
    if fraction <= 0.02 or fraction >= 1 or elapsed < 1:
        return ""
    left = elapsed * (1 - fraction) / fraction
    minutes, seconds = divmod(int(left + 0.5), 60)
    return f"ETA {minutes}m {seconds:02d}s" if minutes else f"ETA {seconds}s"


class _EtaClock:
    """The ETA of one stage at a time: the clock starts at 0 % (or the first call) and stops
    after 100 %, so stage after stage each gets its own."""

    def __init__(self) -> None:
        self.started: float | None = None

    def eta(self, fraction: float) -> str:
        now = time.monotonic()
        if self.started is None or fraction <= 0:
            self.started = now
        text = eta_text(now - self.started, fraction)
        if fraction >= 1:
            self.started = None
        return text


def with_eta(progress: Progress) -> Progress:
    """`progress` with "(ETA …)" added to each message (the UI's progress bars)."""
    clock = _EtaClock()

    def call(fraction: float, message: str) -> None:
        eta = clock.eta(fraction)
        progress(fraction, f"{message} ({eta})" if eta else message)

    return call


class TerminalProgress:
    """One updating line on stderr: percentage, message, ETA; one instance serves stage after
    stage (set `stage` to name the current one), each with its own ETA."""

    def __init__(self, stage: str = "", stream: TextIO | None = None) -> None:
        self.stream = stream  # None: sys.stderr at call time (tests capture it)
        self.stage = stage
        self._clock = _EtaClock()

    def __call__(self, fraction: float, message: str) -> None:
        eta = self._clock.eta(fraction)
        label = f"{self.stage}: {message}" if self.stage else message
        line = f"{fraction:5.0%}  {label}" + (f"  ({eta})" if eta else "")
        stream = self.stream or sys.stderr
        print(f"\r{line:<78}", end="", file=stream, flush=True)
        if fraction >= 1:
            print(file=stream)
