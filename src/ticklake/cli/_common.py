"""What every command shares: the --lake option, error mapping, console, progress."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ticklake.errors import TicklakeError
from ticklake.lake import Lake, open_lake

# Pipes and CI logs get a wide fixed width instead of Rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

F = TypeVar("F", bound=Callable[..., Any])

LakeOption = Annotated[
    Path | None,
    typer.Option(
        "--lake",
        help="Lake directory (default: $TICKLAKE_LAKE, else ./lake).",
        show_default=False,
    ),
]


class _State:
    debug: bool = bool(os.environ.get("TICKLAKE_DEBUG"))


state = _State()


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def handle_errors(func: F) -> F:
    """Turn a TicklakeError into one red line and its exit code (traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TicklakeError as exc:
            if state.debug:
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def get_lake(path: Path | None) -> Lake:
    return open_lake(path)


class ProgressTask:
    """One bar of a :func:`progress_bars` display."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1, note: str = "") -> None:
        self._progress.update(self._task, advance=n, note=note)

    def update(
        self, *, completed: int | None = None, total: int | None = None, note: str | None = None
    ) -> None:
        """Set what is known; ``None`` leaves that part as it was."""
        fields: dict[str, Any] = {} if note is None else {"note": note}
        self._progress.update(self._task, completed=completed, total=total, **fields)


class ProgressBars:
    """The bars of one :func:`progress_bars` display; ``add`` starts another one."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def add(self, description: str, total: int | None = None, note: str = "") -> ProgressTask:
        """A new bar; ``total=None`` until the job knows its size (shows ``n/?``)."""
        return ProgressTask(
            self._progress, self._progress.add_task(description, total=total, note=note)
        )


@contextmanager
def progress_bars(*, enabled: bool = True, on: Console | None = None) -> Iterator[ProgressBars]:
    """The one Rich progress display of the CLI, on stderr so stdout stays clean for pipes.

    Each bar shows description, bar, done/total, elapsed, ETA and a note. The display is
    off when ``enabled`` is false or the console (``on``, default stderr) is not a terminal.
    """
    target = err_console if on is None else on
    display = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=target,
        disable=not (enabled and target.is_terminal),
        transient=False,
    )
    with display:
        yield ProgressBars(display)


@contextmanager
def progress_bar(
    description: str, total: int, *, enabled: bool = True, on: Console | None = None
) -> Iterator[Callable[..., None]]:
    """One :func:`progress_bars` bar; yields ``advance(n=1, note="")``. Hidden for tiny jobs."""
    with progress_bars(enabled=enabled and total > 3, on=on) as bars:
        yield bars.add(description, total).advance


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
