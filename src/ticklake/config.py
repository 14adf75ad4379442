"""Settings: defaults < ``ticklake.toml`` < ``TICKLAKE_*`` environment < flags.

Every section is a frozen Pydantic model that rejects unknown keys, so a typo in the
TOML file, an environment variable or a flag is an error that lists the valid keys.
Environment variables name a key as ``TICKLAKE_<SECTION>__<KEY>``, e.g.
``TICKLAKE_QUERY__TIMEOUT_SECONDS=5``.

Examples:
    >>> s = load_settings(None, env={"TICKLAKE_QUERY__MAX_ROWS": "50"})
    >>> s.query.max_rows
    50
    >>> load_settings(None, overrides={"query": {"max_rows": 7}}).query.max_rows
    7
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ticklake.errors import ConfigError

ENV_PREFIX = "TICKLAKE_"
#: Plain variables that are not settings keys.
ENV_PLAIN = {"TICKLAKE_LAKE", "TICKLAKE_TOKEN", "TICKLAKE_DEBUG"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeSettings(_Section):
    """Storage settings."""

    row_group_rows: int = Field(262_144, ge=1_024, description="rows per Parquet row group")
    compression_level: int = Field(3, ge=1, le=22, description="ZSTD level")
    lock_timeout_seconds: float = Field(600.0, gt=0, description="wait for a partition lock")
    default_timezone: str = Field("UTC", description="time zone for new datasets")
    verify_reads: bool = Field(
        True,
        description="hash each partition file on a process's first read and refuse one that "
        "is not as committed (off: reads trust the files; `lake verify` still checks)",
    )


class QuerySettings(_Section):
    """Limits for the untrusted (read-only) SQL path."""

    memory_limit: str = Field("2GB", description="DuckDB memory limit")
    threads: int = Field(2, ge=1, description="DuckDB threads")
    timeout_seconds: float = Field(30.0, gt=0, description="statement time limit")
    max_rows: int = Field(10_000, ge=1, description="row cap of a result")
    max_result_mib: int = Field(
        256,
        ge=1,
        description="memory cap of a result (Arrow MiB); the query stops once it is passed",
    )


class ExecutionSettings(_Section):
    """How heavy work is spread over processes."""

    executor: Literal["serial", "process", "ray"] = "serial"
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    fresh_worker_per_task: bool = Field(
        True, description="analytics batches: a fresh worker process per batch"
    )
    day_tasks_per_worker: int = Field(
        100,
        ge=1,
        description="backtest days a process worker runs before it is replaced "
        "(1 = a fresh process per day; a day is ~0.1 s of work, a new worker ~1-5 s)",
    )
    worker_max_rss_mib: int = Field(
        2048, ge=64, description="a worker using more memory than this after a task is replaced"
    )


class WarehouseSettings(_Section):
    """The SQL warehouse (``warehouse.duckdb``) and its SQL project folder."""

    project_dir: str = Field(
        "sql",
        description="SQL project folder with views/, models/, migrations/ (relative to the "
        "lake, or absolute)",
    )


class BacktestSettings(_Section):
    """How backtest days are loaded."""

    prune: bool = Field(
        True,
        description="read only the expiry, strikes and columns a strategy can touch on a "
        "day (derived from the spec; the trades are identical with false)",
    )
    day_cache: bool = Field(
        False,
        description="hot day cache: keep each day's aligned expiry (bid, ask, age, spot) as "
        "memory-mapped Arrow files under <lake>/cache/days/, so later runs skip Parquet "
        "(the first run reads the whole expiry; the trades are identical with false)",
    )
    day_cache_max_gib: float = Field(
        4.0,
        gt=0,
        description="size bound of the hot day cache; least recently used days are evicted",
    )


class Settings(_Section):
    """All settings of a lake."""

    version: int = 1
    lake: LakeSettings = LakeSettings()
    query: QuerySettings = QuerySettings()
    execution: ExecutionSettings = ExecutionSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    backtest: BacktestSettings = BacktestSettings()


def valid_keys() -> list[str]:
    """List every settable key as ``section.key``."""
    keys: list[str] = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys.extend(f"{section}.{k}" for k in model.model_fields)
        else:
            keys.append(section)
    return keys


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    known = set(valid_keys())
    data: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_PLAIN or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if f"{section}.{key}" not in known:
            raise ConfigError(
                f"environment variable {name} is not a ticklake setting. Valid keys "
                f"(as TICKLAKE_<SECTION>__<KEY>): {', '.join(sorted(known))}",
                variable=name,
            )
        data.setdefault(section, {})[key] = value
    return data


def load_settings(
    toml_path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from the lake's TOML file, the environment and flag overrides."""
    data: dict[str, Any] = {}
    where = "defaults"
    if toml_path is not None and toml_path.exists():
        where = str(toml_path)
        try:
            data = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: not valid TOML ({exc})", path=str(toml_path)) from exc
    env_data = _from_env(os.environ if env is None else env)
    if env_data:
        where += " + environment"
    data = _merge(data, env_data)
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key {loc!r}")
            else:
                problems.append(f"{loc}: {err['msg']}")
        raise ConfigError(
            f"invalid settings ({where}): {'; '.join(problems)}. "
            f"Valid keys: {', '.join(valid_keys())}",
            problems=problems,
        ) from None


def render_toml(settings: Settings) -> str:
    """Render settings as the TOML text ``ticklake init`` writes."""
    lines = ["# ticklake lake settings (see `ticklake --help`)", f"version = {settings.version}"]
    for section in ("lake", "query", "execution", "warehouse"):
        lines.append("")
        lines.append(f"[{section}]")
        model = getattr(settings, section)
        for key, value in model.model_dump().items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = f'"{value}"'
            else:
                text = str(value)
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
