"""The registry itself, and the documentation every registered metric must carry."""

from __future__ import annotations

import doctest
import importlib

import polars as pl
import pytest
from typer.testing import CliRunner

from ticklake.analytics import registry
from ticklake.analytics.registry import all_metrics, get_metric
from ticklake.cli import app
from ticklake.errors import ConfigError

METRICS = all_metrics()


def test_builtins_come_through_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    groups = {ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    modules = {m.module.rsplit(".", 1)[-1] for m in METRICS}
    assert modules <= groups
    assert not registry.BROKEN_PLUGINS


@pytest.mark.parametrize("m", METRICS, ids=[m.name for m in METRICS])
def test_every_metric_is_documented(m: registry.Metric) -> None:
    assert m.title and m.unit and m.inputs, m.name
    assert len(m.description) >= 20, f"{m.name}: describe what it measures"
    assert m.formula, f"{m.name}: add a 'Formula:' section to its docstring"
    assert ">>>" in m.example, f"{m.name}: add an 'Examples:' doctest"
    m.output_name(m.params_model())  # the template formats with default parameters


@pytest.mark.parametrize("m", METRICS, ids=[m.name for m in METRICS])
def test_every_metric_example_runs(m: registry.Metric) -> None:
    module = importlib.import_module(m.module)
    finder = doctest.DocTestFinder()
    tests = [t for t in finder.find(m.fn, m.fn.__name__, globs=vars(module)) if t.examples]
    assert tests, m.name
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{m.name}: its example fails"


def test_parameters_are_frozen_and_reject_unknown_keys() -> None:
    m = get_metric("mid_price")
    with pytest.raises(ConfigError, match=r"metric 'mid_price': unknown parameter 'windw'"):
        m.parse_params({"windw": 5})


def test_unknown_metric_lists_known_and_aliases_resolve() -> None:
    with pytest.raises(registry.UnknownMetricError, match=r"Known metrics: .*mid_price"):
        get_metric("midd_price")
    assert get_metric("mid").name == "mid_price"


def test_series_metric_against_hand_values() -> None:
    frame = pl.DataFrame({"bid": [100.0, 100.5, None], "ask": [100.5, 101.5, 101.0]})
    m = get_metric("spread_bps")
    out = frame.select(m.series(m.params_model()))
    assert out.columns == ["spread_bps"]
    assert out["spread_bps"][0] == pytest.approx(0.5 / 100.25 * 1e4)
    assert out["spread_bps"][2] is None


def test_cli_list_and_explain() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["analytics", "list"])
    assert listed.exit_code == 0, listed.output
    assert "mid_price" in listed.output and "spread_bps" in listed.output
    explained = runner.invoke(app, ["analytics", "explain", "spread_bps"])
    assert explained.exit_code == 0, explained.output
    assert "(ask - bid) / ((bid + ask) / 2) * 10_000" in explained.output
    missing = runner.invoke(app, ["analytics", "explain", "nope"])
    assert missing.exit_code == 4 and "Known metrics" in missing.output


def test_explain_prints_brackets_as_written() -> None:
    """Examples and formulas hold ``[date(...)]`` / ``ema[first]``; Rich must not read
    them as markup tags and drop them."""
    from ticklake.analytics.registry import get_metric

    explained = CliRunner().invoke(app, ["analytics", "explain", "ema"], terminal_width=200)
    assert explained.exit_code == 0, explained.output
    metric = get_metric("ema")
    assert "ema[first] = field[first]" in (metric.formula or "")
    assert "ema[first] = field[first]" in explained.output
    assert "[datetime(2024, 1, 1, 9, 15, s) for s in (0, 1, 2)]" in explained.output


def test_a_broken_plugin_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenEntryPoint:
        name = "broken"
        value = "nowhere.module"

        def load(self) -> None:
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "BROKEN_PLUGINS", {})
    monkeypatch.setattr(registry, "entry_points", lambda group: [BrokenEntryPoint()])
    registry.load_plugins()
    assert registry.BROKEN_PLUGINS == {
        "broken": "nowhere.module: ImportError: No module named 'nowhere'"
    }
    result = CliRunner().invoke(app, ["analytics", "list"])
    assert "broken metric plugin broken" in result.output
