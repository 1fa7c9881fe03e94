"""Apply progress on stderr: a rich display on a terminal, plain lines elsewhere."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from imagesync.apply.report import ApplyListener, ImageResult
from imagesync.plan.document import Change, Plan

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn, Task, TaskID


@contextmanager
def progress_for(plan: Plan) -> Iterator[ApplyListener]:
    """A rich display on a terminal, plain lines elsewhere (CI logs, pipes, ``NO_COLOR``).

    Only a terminal pays for importing rich: a run in CI starts that much sooner.
    """
    if not sys.stderr.isatty() or os.environ.get("NO_COLOR"):
        yield PlainProgress()
        return
    from rich.console import Console

    with RichProgress(plan, Console(stderr=True)) as listener:
        yield listener


class PlainProgress(ApplyListener):
    """A line as each copy begins: for CI logs and pipes, where redrawing bars is noise.

    It says what the report on stdout does not (what is copied from where, while it happens);
    the outcome of each image is the report's to say, once.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def image_started(self, change: Change) -> None:
        self._say(f"copying {change.source_text} -> {change.target}")

    def bytes_resumed(self, change: Change, offset: int) -> None:
        from imagesync.words import human_bytes

        self._say(f"resumed a blob of {change.target} at {human_bytes(offset)}")


class RichProgress(ApplyListener):
    """A bar per image and an overall bar in bytes, in the report's units (KiB, MiB). The bars
    go when apply ends: the report on stdout then says once what became of each image."""

    def __init__(self, plan: Plan, console: Console) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _speed_column(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        # What crosses the wire: mounted blobs move no bytes.
        total = sum(c.bytes_to_copy for c in plan.changes)
        self._overall = self._progress.add_task("total", total=total or None)
        self._tasks: dict[int, TaskID] = {}
        self._resumed: dict[int, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def image_started(self, change: Change) -> None:
        with self._lock:
            self._tasks[change.entry] = self._progress.add_task(
                change.target, total=change.bytes_to_copy or None
            )

    def bytes_copied(self, change: Change, count: int) -> None:
        task = self._tasks.get(change.entry)
        if task is not None:
            self._progress.advance(task, count)
        self._progress.advance(self._overall, count)

    def bytes_resumed(self, change: Change, offset: int) -> None:
        """Resumed bytes are shown apart: in the image's description."""
        from imagesync.words import human_bytes

        task = self._tasks.get(change.entry)
        with self._lock:
            self._resumed[change.entry] = self._resumed.get(change.entry, 0) + offset
            spared = self._resumed[change.entry]
        if task is not None:
            self._progress.update(
                task, description=f"{change.target} (resumed, {human_bytes(spared)} kept)"
            )

    def image_finished(self, result: ImageResult) -> None:
        task = self._tasks.get(result.entry)
        if task is not None:
            self._progress.update(task, description=f"{result.outcome.value} {result.target}")
            self._progress.stop_task(task)


def _speed_column() -> ProgressColumn:
    """Bytes a second in the report's units (rich's own speed column counts in MB)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    from imagesync.words import human_bytes

    class Speed(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                f"{human_bytes(int(speed))}/s" if speed else "?", style="progress.data.speed"
            )

    return Speed()
