"""The shared page of the HTML reports (``ticklake._html``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest
from plotly.offline import get_plotlyjs

from ticklake._html import BASE_CSS, figure_block, frame_table, page, write_page


def test_page_is_self_contained_with_escaped_title_and_css_after_the_base() -> None:
    document = page("P&L <run> — 1", "<p id='body'>x</p>", "table { font-size: .9em; }")
    assert "<title>P&amp;L &lt;run&gt; — 1</title>" in document
    assert not re.search(r"<script[^>]+src=", document)
    assert document.count(get_plotlyjs()[:2_000]) == 1
    style = re.search(r"<style>(.*?)</style>", document, flags=re.S)
    assert style is not None
    # The report's own rules come last so they win over the base rules they restate.
    assert style.group(1) == BASE_CSS + "table { font-size: .9em; }"
    body = re.search(r"<body>\n(.*?)\n<script", document, flags=re.S)
    assert body is not None and body.group(1) == "<p id='body'>x</p>"


def test_figure_block_embeds_json_that_reads_back_even_with_a_closing_script_tag() -> None:
    figure = go.Figure(go.Bar(x=["a"], y=[1.5], name="</script><b>"))
    figure.update_layout(title="t")
    block = figure_block("k1", figure, "Net P&L <₹>")
    assert block.startswith("<section class='chart'><h2>Net P&amp;L &lt;₹&gt;</h2>\n")
    scripts = re.findall(
        r"<script type='application/json' id='figure-k1' data-target='chart-k1'>(.*?)</script>",
        block,
        flags=re.S,
    )
    assert len(scripts) == 1  # the name's "</script>" did not end the block early
    data = json.loads(scripts[0])
    assert data["data"][0]["name"] == "</script><b>"
    assert data["data"][0]["y"] == [1.5]
    assert "<div id='chart-k1' class='figure'></div>" in block
    assert "<h2>" not in figure_block("k2", figure)


def test_frame_table_escapes_headers_and_cells_through_the_text_function() -> None:
    frame = pl.DataFrame({"a<b": ["x&y", None], "n": [1.25, 3.0]})
    shown = frame_table(frame, "t", lambda v: "-" if v is None else f"[{v}]")
    assert shown.startswith("<div class='scroll'><table class='t'><thead><tr>")
    assert "<th>a&lt;b</th><th>n</th>" in shown
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", shown)
    assert rows == [("[x&amp;y]", "[1.25]"), ("-", "[3.0]")]


def test_write_page_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "new" / "report.html"
    assert write_page(target, "<p>₹ one</p>") == target
    assert target.read_text(encoding="utf-8") == "<p>₹ one</p>"
    write_page(target, "<p>two</p>")
    assert target.read_text(encoding="utf-8") == "<p>two</p>"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_a_failed_write_keeps_the_old_page(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_page(target, "<p>old</p>")
    with pytest.raises(UnicodeEncodeError):
        write_page(target, "<p>\ud800</p>")  # a lone surrogate cannot be encoded as UTF-8
    assert target.read_text(encoding="utf-8") == "<p>old</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
