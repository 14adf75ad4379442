"""The one progress display every command uses (``cli._common.progress_bars``)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from ticklake.cli._common import progress_bar, progress_bars


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=200, color_system=None), out


def _last_line(text: str, containing: str) -> str:
    """The bar as last drawn: escape codes dropped, redraws split apart."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", text)
    return [line for line in re.split(r"[\r\n]", plain) if containing in line][-1]


def test_bar_shows_description_count_and_note_on_a_terminal() -> None:
    console, out = _terminal()
    with progress_bars(on=console) as bars:
        bar = bars.add("reading files", 5)
        bar.advance(note="a.csv")
        bar.advance(2, note="c.csv")
    final = _last_line(out.getvalue(), "reading files")
    assert "3/5" in final
    assert "c.csv" in final
    assert "a.csv" not in final


def test_update_sets_total_later_and_keeps_the_note_when_none() -> None:
    console, out = _terminal()
    with progress_bars(on=console) as bars:
        bar = bars.add("pipeline p", note="starting")
        bar.update(total=4, completed=2)
    final = _last_line(out.getvalue(), "pipeline p")
    assert "2/4" in final
    assert "starting" in final


def test_several_bars_in_one_display() -> None:
    console, out = _terminal()
    with progress_bars(on=console) as bars:
        bars.add("reading files", 2).advance(2)
        bars.add("committing days", 7).advance()
    assert "2/2" in _last_line(out.getvalue(), "reading files")
    assert "1/7" in _last_line(out.getvalue(), "committing days")


def test_nothing_is_drawn_when_not_a_terminal_or_disabled() -> None:
    piped_out = io.StringIO()
    piped = Console(file=piped_out, force_terminal=False, width=200)
    with progress_bars(on=piped) as bars:
        bars.add("reading files", 5).advance()
    assert piped_out.getvalue() == ""

    console, out = _terminal()
    with progress_bars(enabled=False, on=console) as bars:
        bars.add("reading files", 5).advance()
    assert out.getvalue() == ""


def test_progress_bar_hides_tiny_jobs() -> None:
    console, out = _terminal()
    with progress_bar("bars", 3, on=console) as advance:
        advance(note="2024-01-02")
    assert out.getvalue() == ""

    with progress_bar("bars", 4, on=console) as advance:
        advance(note="2024-01-02")
    final = _last_line(out.getvalue(), "bars")
    assert "1/4" in final
    assert "2024-01-02" in final
