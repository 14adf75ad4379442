"""``ticklake strategies list | show | new``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ticklake.backtest.spec import load_spec
from ticklake.backtest.sweep import expand, load_sweep
from ticklake.cli import app
from ticklake.strategies import STRATEGY_NAME, copy_template, template_path

runner = CliRunner()
TEMPLATE_FILES = sorted(template_path("iron_fly").parent.glob("*.yml"))


def test_list_shows_every_template_file_with_its_sweep_axes() -> None:
    result = runner.invoke(app, ["strategies", "list"])
    assert result.exit_code == 0, result.output
    for path in TEMPLATE_FILES:
        assert path.stem in result.output
    assert "wing [1, 2, 3, 4]" in result.output
    assert "distance [1, 2, 3, 4]" in result.output
    # The first sentence of each description is shown (Rich may wrap it; compare words).
    first_words = yaml.safe_load(template_path("monday_gap_fade").read_text())["description"]
    assert " ".join(first_words.split()[:4]) in " ".join(result.output.split())


def test_show_prints_the_template_file_verbatim() -> None:
    result = runner.invoke(app, ["strategies", "show", "expiry_day_decay_seller"])
    assert result.exit_code == 0, result.output
    assert result.output == template_path("expiry_day_decay_seller").read_text()


def test_show_unknown_template_lists_the_known_ones() -> None:
    result = runner.invoke(app, ["strategies", "show", "straddle"])
    assert result.exit_code == 2
    assert "no strategy template 'straddle'" in result.output
    assert "atm_straddle_hourly" in result.output and "iron_fly_wing_sweep" in result.output


def test_new_copies_into_strategies_folder_with_the_new_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["strategies", "new", "my_fade", "--from", "monday_gap_fade"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "strategies" / "my_fade.yml"
    assert "strategies/my_fade.yml" in result.output
    original = template_path("monday_gap_fade").read_text().splitlines()
    copy = written.read_text().splitlines()
    # Only the name line differs; comments and layout are kept.
    assert [i for i, (a, b) in enumerate(zip(original, copy, strict=True)) if a != b] == [1]
    assert copy[1] == "name: my_fade"
    spec = load_spec(written)
    assert spec.name == "my_fade" and spec.time.weekdays == ("mon",)
    check = runner.invoke(app, ["backtest", "check", str(written)])
    assert check.exit_code == 0, check.output


def test_new_from_a_sweep_template_is_still_a_sweep(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["strategies", "new", "wings", "--from", "iron_fly_wing_sweep", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    sweep = load_sweep(tmp_path / "wings.yml")
    assert sweep is not None and sweep.axes == {"wing": [1, 2, 3, 4]}
    assert [v.spec.name for v in expand(sweep)] == ["wings"] * 4


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "mine.yml"
    target.write_text("my own work\n")
    result = runner.invoke(
        app, ["strategies", "new", "mine", "--from", "iron_fly", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "already exists" in result.output and "never overwrites" in result.output
    assert target.read_text() == "my own work\n"


def test_new_rejects_a_name_that_is_not_a_strategy_name(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["strategies", "new", "../escape", "--from", "iron_fly", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "strategy name '../escape'" in result.output
    assert not any(tmp_path.parent.glob("escape.yml")) and not any(tmp_path.iterdir())


def test_new_from_unknown_template_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["strategies", "new", "mine", "--from", "nope", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "no strategy template 'nope'" in result.output
    assert not (tmp_path / "out").exists()


def test_copy_template_names_follow_the_spec_rule() -> None:
    assert STRATEGY_NAME.match("my.straddle-v2")
    assert not STRATEGY_NAME.match("a b")
    with pytest.raises(ValueError, match="strategy name 'a b'"):
        copy_template("iron_fly", "a b", Path("unused"))
