"""ticklake.dagster in the Dagster venv: partitions, bars, checks, no-op re-runs, schedule.

Run by tests/unit/test_dagster.py with ``.venv/dagster-env/bin/python -m pytest``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from polars.testing import assert_frame_equal
from sample_lake import BAD_DAY, DAYS, PIPELINE, build_sample_lake

import ticklake
from ticklake.dagster import definitions

BARS = ["banknifty_options:1m"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample lake, built once; tests that commit work on a copy."""
    return build_sample_lake(tmp_path_factory.mktemp("sample"))


@pytest.fixture
def root(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "lake"))


def _defs(root: Path, **options: object) -> dg.Definitions:
    return definitions(root, pipelines=[PIPELINE], bars=BARS, **options)  # type: ignore[arg-type]


def _assets(defs: dg.Definitions) -> dict[str, dg.AssetsDefinition]:
    return {k.to_user_string(): a for a in defs.assets for k in a.keys}  # type: ignore[union-attr]


def _key(text: str) -> dg.AssetKey:
    return dg.AssetKey(text.split("/"))


def test_every_dataset_is_an_asset_with_the_lake_days_as_partitions(root: Path) -> None:
    lake = ticklake.open_lake(root)
    assets = _assets(_defs(root))
    for info in lake.datasets():
        asset = assets[f"{info.layer}/{info.name}"]
        days = [p.date.isoformat() for p in lake.partitions(info.name, layer=info.layer)]
        assert asset.partitions_def is not None
        assert asset.partitions_def.get_partition_keys() == days, info.name
    # the derived assets: bars build, both pipeline passes, both SQL models
    for name in (
        "silver/bars_1m",
        "gold/option_greeks_greeks",
        "gold/option_greeks_hourly_iv_rank",
        "gold/atm_map",
        "gold/opening_window",
    ):
        assert assets[name].partitions_def.get_partition_keys() == [d.isoformat() for d in DAYS]
    graph = _defs(root).resolve_asset_graph()
    deps = lambda name: {k.to_user_string() for k in graph.get(_key(name)).parent_keys}  # noqa: E731
    assert deps("silver/banknifty_spot_1m") == {"bronze/banknifty_spot"}  # from the lineage
    assert deps("silver/bars_1m") == {"bronze/banknifty_options"}
    assert deps("gold/option_greeks_greeks") == {
        "bronze/banknifty_options",
        "bronze/banknifty_spot",
    }
    assert deps("gold/option_greeks_hourly_iv_rank") == {"gold/option_greeks_greeks"}
    assert deps("gold/opening_window") == {"silver/banknifty_spot_1m"}
    assert {s.name for s in _defs(root).schedules} == {
        "ticklake_xbom_new_days",
        "ticklake_24_7_new_days",
    }


def test_a_bars_partition_is_what_lake_bars_builds_and_a_rerun_is_a_no_op(
    root: Path, tmp_path: Path
) -> None:
    oracle_root = Path(shutil.copytree(root, tmp_path / "oracle"))
    day = DAYS[1]
    defs = _defs(root)
    result = dg.materialize(defs.assets, selection=[_key("silver/bars_1m")],
                            partition_key=day.isoformat())  # fmt: skip
    assert result.success
    lake = ticklake.open_lake(root)
    assert [p.date for p in lake.partitions("bars_1m", layer="silver")] == [day]
    # the oracle: the facade called directly on an untouched copy of the lake
    oracle = ticklake.open_lake(oracle_root)
    oracle.bars("banknifty_options", "1m", start=day, end=day)
    assert_frame_equal(lake.read("silver.bars_1m"), oracle.read("silver.bars_1m"))
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.asset_key == _key("silver/bars_1m")

    (part,) = lake.partitions("bars_1m", layer="silver")
    before = (part.manifest.file_sha256, part.path.stat().st_mtime_ns)
    again = dg.materialize(_defs(root).assets, selection=[_key("silver/bars_1m")],
                           partition_key=day.isoformat())  # fmt: skip
    assert again.success
    (part,) = ticklake.open_lake(root).partitions("bars_1m", layer="silver")
    assert (part.manifest.file_sha256, part.path.stat().st_mtime_ns) == before
    (event,) = again.asset_materializations_for_node("silver__bars_1m")
    assert event.metadata["status"].value == f"{day} unchanged"


def test_the_quality_check_fails_on_the_bad_day_and_passes_on_the_good_one(root: Path) -> None:
    defs = _defs(root)
    bad = dg.materialize(defs.assets, selection=[_key("bronze/px")],
                         partition_key=BAD_DAY.isoformat(), raise_on_error=False)  # fmt: skip
    (check,) = bad.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["verdict"].value == "FAIL"
    assert "R2" in check.metadata["failing_rules"].value
    good = dg.materialize(defs.assets, selection=[_key("bronze/px")], partition_key="2024-01-02")
    (check,) = good.get_asset_check_evaluations()
    assert check.passed


def test_a_day_of_the_whole_graph_then_the_schedule_asks_for_the_other_day(root: Path) -> None:
    # The 1-minute bars of the generated chain have empty minutes on 2024-01-10 (R4, an
    # error rule, FAILs there): the blocking check would stop the run; validate_options
    # picks the rules, as `ticklake validate --rules` does.
    defs = _defs(root, validate_options={"silver.bars_1m": {"rules": ["R1", "R2"]}})
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("ticklake_xbom_days")
        keys = [k for k in job.asset_layer.selected_asset_keys]
        result = dg.materialize(defs.assets, selection=keys, partition_key=DAYS[0].isoformat(),
                                instance=instance)  # fmt: skip
        assert result.success
        lake = ticklake.open_lake(root)
        for name in (
            "silver.bars_1m",
            "gold.option_greeks_greeks",
            "gold.option_greeks_hourly_iv_rank",
            "gold.atm_map",
            "gold.opening_window",
        ):
            layer, dataset = name.split(".")
            assert DAYS[0] in {p.date for p in lake.partitions(dataset, layer=layer)}, name
        schedule = defs.resolve_schedule_def("ticklake_xbom_new_days")
        context = dg.build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def()
        )
        data = schedule.evaluate_tick(context)
        assert [r.partition_key for r in data.run_requests] == [DAYS[1].isoformat()]
        # a partition materialised again through Dagster commits nothing new
        shas = {
            (p.layer, p.dataset): p.manifest.file_sha256
            for info in lake.datasets() for p in lake.partitions(info.name, layer=info.layer)
            if p.date == DAYS[0]
        }  # fmt: skip
        again = dg.materialize(defs.assets, selection=keys, partition_key=DAYS[0].isoformat(),
                               instance=instance)  # fmt: skip
        assert again.success
        lake = ticklake.open_lake(root)
        after = {
            (p.layer, p.dataset): p.manifest.file_sha256
            for info in lake.datasets() for p in lake.partitions(info.name, layer=info.layer)
            if p.date == DAYS[0]
        }  # fmt: skip
        assert after == shas


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_webserver_starts_on_localhost_and_lists_the_assets(
    built: Path, tmp_path: Path
) -> None:
    defs_file = tmp_path / "defs.py"
    defs_file.write_text(
        "from ticklake.dagster import definitions\n"
        f"defs = definitions({str(built)!r}, pipelines=[{str(PIPELINE)!r}], bars={BARS!r})\n"
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    port = _free_port()
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-f", str(defs_file)],
        env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    paths: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", data=query,
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=10) as response:
                    nodes = json.load(response)["data"]["assetNodes"]
                paths = sorted("/".join(n["assetKey"]["path"]) for n in nodes)
                if paths:
                    break
            except (OSError, KeyError, TypeError, ValueError):
                pass
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    lake = ticklake.open_lake(built)
    expected = {f"{d.layer}/{d.name}" for d in lake.datasets()} | {
        "silver/bars_1m", "gold/option_greeks_greeks", "gold/option_greeks_hourly_iv_rank",
        "gold/atm_map", "gold/opening_window",
    }  # fmt: skip
    assert set(paths) == expected, out.decode(errors="replace")[-3000:]
    assert proc.returncode is not None


def test_each_asset_names_the_facade_verb_it_calls(built: Path) -> None:
    assets = _assets(_defs(built))
    kinds = {name: a.metadata_by_key[_key(name)]["ticklake/kind"] for name, a in assets.items()}
    assert kinds["bronze/px"] == "dataset"
    assert kinds["silver/banknifty_spot_1m"] == kinds["silver/bars_1m"] == "bars"
    assert kinds["gold/option_greeks_hourly_iv_rank"] == "analytics"
    assert kinds["gold/atm_map"] == "model"
    checks = {k.asset_key.to_user_string() for a in assets.values() for k in a.check_keys}
    assert checks == {"bronze/banknifty_options", "bronze/banknifty_spot", "bronze/px",
                      "silver/banknifty_spot_1m", "silver/bars_1m"}  # fmt: skip
