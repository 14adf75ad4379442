"""What every command shares: the --lake option, error mapping, console, progress."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.exceptions import TyperException

from ticklake.errors import InterruptedRunError, TicklakeError

if TYPE_CHECKING:
    from ticklake.api import LakeSession

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


INTERRUPTED_EXIT_CODE = InterruptedRunError.exit_code
UNEXPECTED_EXIT_CODE = 1


def _one_line(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


def handle_errors(func: F) -> F:
    """Turn any error into one red line and an exit code (a traceback only with --debug).

    A TicklakeError exits with its own code; Ctrl+C with 130 (commits are atomic per
    partition, so a re-run finishes the job); anything else is a bug and exits with 1,
    naming the exception type and pointing at ``--debug`` for the traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # deliberate exits and usage errors: typer prints and exits as usual
        except TicklakeError as exc:
            if state.debug:
                raise
            err_console.print("[bold red]error:[/] ", end="")
            _one_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if state.debug:
                raise
            err_console.print("[bold red]interrupted:[/] ", end="")
            _one_line(
                "stopped by Ctrl+C. Every partition commit is atomic, so nothing partial "
                "is visible; run the same command again to finish."
            )
            raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
        except Exception as exc:
            if state.debug:
                raise
            err_console.print("[bold red]unexpected error:[/] ", end="")
            _one_line(
                f"{type(exc).__name__}: {exc} (a ticklake bug: re-run with --debug for the "
                "traceback and report it)"
            )
            raise typer.Exit(UNEXPECTED_EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]


def get_lake(path: Path | None) -> LakeSession:
    """The lake a command works on, through the facade every command uses."""
    # Imported here, not at the top: the facade loads Polars and pyarrow, which
    # `ticklake --help` and the commands that never open a lake do not need.
    from ticklake.api import open_lake

    return open_lake(path)


class ProgressTask:
    """One bar of a :func:`progress_bars` display."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1, note: str = "") -> None:
        self._progress.update(self._task, advance=n, note=note)

    def update(
        self,
        *,
        completed: int | None = None,
        total: int | None = None,
        note: str | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        """Set what is known; ``None`` leaves that part as it was.

        ``eta_seconds`` is the job's own prediction of its remaining time (a backtest's
        day-cost model, :mod:`ticklake.backtest.eta`); the bar counts it down until the
        next update, instead of Rich's rate-based guess.
        """
        fields: dict[str, Any] = {} if note is None else {"note": note}
        if eta_seconds is not None:
            fields.update(eta_seconds=eta_seconds, eta_at=time.monotonic())
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


def human_duration(seconds: float) -> str:
    """``1 h 2 m``, ``1 m 20 s``, ``7 s`` (whole seconds, rounded up).

    Examples:
        >>> human_duration(80), human_duration(6.2), human_duration(3725), human_duration(0)
        ('1 m 20 s', '7 s', '1 h 2 m', '0 s')
    """
    whole = int(-(-max(0.0, seconds) // 1))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} m"
    if minutes:
        return f"{minutes} m {secs} s"
    return f"{secs} s"


class ModelEtaColumn(TimeRemainingColumn):
    """The job's own ETA (``eta_seconds`` field) counted down; else Rich's estimate."""

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta_seconds")
        if eta is None:
            return super().render(task)
        left = 0.0 if task.finished else eta - (time.monotonic() - task.fields["eta_at"])
        return Text(f"ETA {human_duration(left)}", style="progress.remaining")


@contextmanager
def progress_bars(*, enabled: bool = True, on: Console | None = None) -> Iterator[ProgressBars]:
    """The one Rich progress display of the CLI, on stderr so stdout stays clean for pipes.

    Each bar shows description, bar, done/total, elapsed, ETA (the job's own model when it
    gives ``eta_seconds``, see :class:`ModelEtaColumn`) and a note. The display is
    off when ``enabled`` is false or the console (``on``, default stderr) is not a terminal.
    """
    target = err_console if on is None else on
    display = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        ModelEtaColumn(),
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
