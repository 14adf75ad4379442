"""Settings: unknown keys and bad values are errors listing valid keys; precedence holds."""

from __future__ import annotations

from pathlib import Path

import pytest

import ticklake
from ticklake.config import load_settings, valid_keys
from ticklake.errors import ConfigError


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_unknown_toml_key_lists_valid_keys(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "ticklake.toml", "[query]\nmax_row = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(toml, env={})
    message = str(caught.value)
    assert "unknown key 'query.max_row'" in message
    assert str(toml) in message
    for key in ("query.max_rows", "lake.row_group_rows", "execution.workers"):
        assert key in message


def test_unknown_toml_section_is_rejected(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "ticklake.toml", "[querry]\nmax_rows = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'querry'"):
        load_settings(toml, env={})


def test_unknown_environment_variable_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={"TICKLAKE_QUERY__TIMEOUT": "5"})
    message = str(caught.value)
    assert "TICKLAKE_QUERY__TIMEOUT is not a ticklake setting" in message
    assert "query.timeout_seconds" in message
    assert caught.value.variable == "TICKLAKE_QUERY__TIMEOUT"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({"env": {"TICKLAKE_QUERY__MAX_ROWS": "many"}}, "query.max_rows"),
        ({"env": {"TICKLAKE_LAKE__COMPRESSION_LEVEL": "99"}}, "lake.compression_level"),
        ({"overrides": {"execution": {"executor": "threads"}}}, "execution.executor"),
        ({"overrides": {"query": {"timeout_seconds": -1}}}, "query.timeout_seconds"),
    ],
)
def test_bad_values_are_errors_naming_the_key(source: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env=source.get("env", {}), overrides=source.get("overrides"))
    message = str(caught.value)
    assert problem in message
    assert "Valid keys: " + ", ".join(valid_keys()) in message


def test_precedence_defaults_toml_env_overrides(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path / "ticklake.toml",
        "[query]\nmax_rows = 100\ntimeout_seconds = 10.0\nthreads = 3\n",
    )
    env = {"TICKLAKE_QUERY__TIMEOUT_SECONDS": "20", "TICKLAKE_QUERY__THREADS": "4"}
    settings = load_settings(toml, env=env, overrides={"query": {"threads": 5}})
    assert settings.query.memory_limit == "2GB"  # default
    assert settings.query.max_rows == 100  # toml over default
    assert settings.query.timeout_seconds == 20.0  # env over toml
    assert settings.query.threads == 5  # override over env


def test_lake_reads_its_toml_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    ticklake.init_lake(root)
    config = root / "ticklake.toml"
    config.write_text(config.read_text().replace("max_rows = 10000", "max_rows = 77"))
    assert ticklake.open_lake(root).settings.query.max_rows == 77
    monkeypatch.setenv("TICKLAKE_QUERY__MAX_ROWS", "88")
    assert ticklake.open_lake(root).settings.query.max_rows == 88
    assert ticklake.open_lake(root, query={"max_rows": 99}).settings.query.max_rows == 99
    monkeypatch.setenv("TICKLAKE_LAKE__ROW_GROUPS", "8")
    with pytest.raises(ConfigError, match="TICKLAKE_LAKE__ROW_GROUPS"):
        ticklake.open_lake(root)
