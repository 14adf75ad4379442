"""The page every self-contained HTML report is built on (backtest tearsheet, window stats).

A report is one file: plotly.js is inlined once, so no request leaves the machine when
it is opened, and each chart's figure is embedded as JSON in a
``<script type="application/json" id="figure-KEY">`` block drawn by a few lines of
script, so the data behind every chart can be read back out of the file.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

# Each report adds its own rules after these; a later rule of the same selector wins.
BASE_CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; font-size: 1.15em; }
table { border-collapse: collapse; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e3e3e3; text-align: left; }
.scroll { overflow-x: auto; max-height: 32em; }
.note { color: #666; font-size: .85em; }
pre.spec { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .85em; }
"""

# Draw every embedded figure; the figures' JSON stays readable in the file.
_DRAW_FIGURES = """
document.querySelectorAll('script[type="application/json"][data-target]').forEach(
  function (node) {
    var figure = JSON.parse(node.textContent);
    Plotly.newPlot(node.dataset.target, figure.data, figure.layout,
                   {responsive: true, displaylogo: false});
  });
"""


def page(title: str, body: str, css: str = "") -> str:
    """Return the whole document: ``title`` (escaped here), the CSS and ``body`` (HTML).

    Examples:
        >>> text = page("P&L <daily>", "<p>hi</p>")
        >>> "<title>P&amp;L &lt;daily&gt;</title>" in text, text.count("Plotly.newPlot")
        (True, 1)
    """
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{BASE_CSS}{css}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
{body}
<script type="text/javascript">{_DRAW_FIGURES}</script>
</body>
</html>
"""


def figure_block(key: str, figure: go.Figure, title: str | None = None) -> str:
    """A chart section: optional ``<h2>`` title, the target div and the figure's JSON."""
    # "</" inside a <script> block would end it early; "<\/" is the same JSON string.
    data = figure.to_json().replace("</", "<\\/")
    heading = "" if title is None else f"<h2>{html.escape(title)}</h2>\n"
    return (
        f"<section class='chart'>{heading}<div id='chart-{key}' class='figure'></div>\n"
        f"<script type='application/json' id='figure-{key}' data-target='chart-{key}'>"
        f"{data}</script></section>"
    )


def frame_table(frame: pl.DataFrame, css_class: str, text: Callable[[Any], str] = str) -> str:
    """A scrolling table of every row of ``frame``; ``text`` turns a value into cell text.

    Examples:
        >>> frame_table(pl.DataFrame({"a<b": ["x&y"]}), "t")  # doctest: +NORMALIZE_WHITESPACE
        "<div class='scroll'><table class='t'><thead><tr><th>a&lt;b</th></tr></thead><tbody><tr><td>x&amp;y</td></tr></tbody></table></div>"
    """  # noqa: E501
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(text(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return (
        f"<div class='scroll'><table class='{css_class}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def write_page(path: Path, document: str) -> Path:
    """Write ``document`` to ``path`` atomically and return the path.

    A browser refreshing mid-write sees the old or the new report, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(document, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
