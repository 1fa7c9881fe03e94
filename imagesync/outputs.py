"""Output files a command writes (a plan with ``-o``, ``$GITHUB_STEP_SUMMARY``): a file that
cannot be written is a message naming it and what to do, never a traceback."""

from __future__ import annotations

from pathlib import Path

from imagesync.errors import ImagesyncError
from imagesync.printable import printable


class OutputError(ImagesyncError):
    """An output file cannot be written; the message names it and why."""


def check_output(path: str | Path, what: str, hint: str) -> None:
    """Refuse ``path`` before any work when it can never be written: its directory is
    missing, or it is a directory itself. (A full disk shows only when written.)"""
    target = Path(path)
    directory = target.parent
    if target.is_dir():
        raise _refused(what, target, "it is a directory", hint)
    if not directory.is_dir():
        why = f"its directory {printable(str(directory))} does not exist"
        raise _refused(what, target, why, hint)


def write_output(
    path: str | Path, text: str, what: str, hint: str, *, append: bool = False
) -> None:
    """Write (or append) ``text`` to ``path`` as UTF-8; an OSError is an :class:`OutputError`
    that names ``what`` the file is and the path, with ``hint``, what to do."""
    target = Path(path)
    try:
        with open(target, "a" if append else "w", encoding="utf-8") as output:
            output.write(text)
    except OSError as error:
        raise _refused(what, target, error.strerror or type(error).__name__, hint) from None
    except UnicodeEncodeError:  # a lone surrogate, from a name that was not UTF-8
        raise _refused(what, target, "the text is not UTF-8", hint) from None


def _refused(what: str, path: Path, why: str, hint: str) -> OutputError:
    return OutputError(f"cannot write {what} {printable(str(path))}: {why}", hint)
