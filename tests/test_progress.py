"""Apply progress on stderr: bars on a terminal, one plain line per image elsewhere."""

from __future__ import annotations

import io
import re

import pytest

from imagesync.apply.progress import PlainProgress, RichProgress, progress_for
from imagesync.apply.report import ImageResult, Outcome
from imagesync.plan.document import Action, Change, ImagesFileInfo, Plan

TARGET = "reg.example/mirror/library/busybox:1.36"
CHANGE = Change(
    entry=1,
    line=3,
    source_text="busybox:1.36",
    source="docker.io/library/busybox:1.36",
    target=TARGET,
    action=Action.CREATE,
    reason="not in the target",
    digest="sha256:" + "a" * 64,
    bytes_to_transfer=2048,
)
PLAN = Plan(
    "0.1.0",
    "2026-11-27T00:00:00Z",
    "reg.example/mirror",
    ImagesFileInfo("external-images.yaml", "0" * 64),
    (CHANGE,),
)
RESULT = ImageResult(1, CHANGE.source, TARGET, CHANGE.digest, Outcome.CREATED, "copied")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(listener: object) -> None:
    assert isinstance(listener, PlainProgress | RichProgress)
    listener.image_started(CHANGE)
    listener.bytes_copied(CHANGE, 1024)
    listener.bytes_copied(CHANGE, 1024)
    listener.image_finished(RESULT)


def test_a_pipe_gets_a_line_as_a_copy_begins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what the report does not say: the outcome is the report's to say, once."""
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    with progress_for(PLAN) as listener:
        assert isinstance(listener, PlainProgress)
        drive(listener)
    assert stderr.getvalue().splitlines() == [f"copying busybox:1.36 -> {TARGET}"]


def test_a_terminal_gets_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.delenv("NO_COLOR", raising=False)
    with progress_for(PLAN) as listener:
        assert isinstance(listener, RichProgress)
        drive(listener)
    written = stderr.getvalue()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written)
    assert "2.0/2.0" in shown  # the bytes copied reached the bars
    assert "KiB" in shown and "iB/s" in shown  # in the report's units
    assert not re.search(r"\b[kMG]B\b", shown)
    # The bars are erased when apply ends (cursor up, erase line): the report says the rest.
    assert written.rstrip("\x1b[?25h").endswith("\x1b[2K")


def test_no_color_on_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    with progress_for(PLAN) as listener:
        assert isinstance(listener, PlainProgress)
