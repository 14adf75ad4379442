"""``ticklake sql shell`` driven through a pipe, as a script would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import ticklake

ENTRY = "from ticklake.cli import main; main()"


def _shell(lake: Path, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, "sql", "shell", *flags, "--lake", str(lake)],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def lake(tmp_path: Path) -> ticklake.LakeSession:
    session = ticklake.init_lake(tmp_path / "lake")
    session.sql_run("create table prices as select range as n, range * 1.5 as p from range(4)")
    return session


def test_read_only_shell_runs_multi_line_statements_and_dot_commands(
    lake: ticklake.LakeSession,
) -> None:
    script = (
        ".tables\n"
        "select sum(p) as total\n"
        "  from prices -- a comment; not the end\n"
        "  where n >= 1;\n"
        ".schema prices\n"
        "create table sneaky (a int);\n"
        "select 'still running' as s;\n"
        ".quit\n"
        "select 'after quit' as s;\n"
    )
    result = _shell(lake.root, script)
    assert "main.prices\tuser table" in result.stdout
    assert "9.0" in result.stdout  # (1 + 2 + 3) * 1.5
    assert "main.prices (user table)\n  n BIGINT\n  p DECIMAL" in result.stdout
    assert "statement 1 is CREATE, but this query runs read-only" in result.stderr
    assert "add --write" in result.stderr
    assert "still running" in result.stdout  # an error does not end a piped session
    assert "after quit" not in result.stdout
    assert "ticklake>" not in result.stdout  # no prompts on a pipe
    assert result.returncode == 1  # a statement failed
    con = duckdb.connect(str(lake.root / "warehouse.duckdb"), read_only=True)
    tables = con.execute("select table_name from information_schema.tables").fetchall()
    con.close()
    assert ("sneaky",) not in tables


def test_write_shell_commits_each_statement(lake: ticklake.LakeSession) -> None:
    script = "create table t as\nselect 42 as answer;\ninsert into t values (7);\n"
    result = _shell(lake.root, script, "--write")
    assert result.returncode == 0, result.stderr
    assert "created main.t" in result.stderr
    assert "statement 1 (INSERT): 1 row(s)" in result.stderr
    con = duckdb.connect(str(lake.root / "warehouse.duckdb"), read_only=True)
    assert con.execute("select answer from t order by 1").fetchall() == [(7,), (42,)]
    con.close()


def test_unknown_dot_command_and_unknown_object_are_errors(lake: ticklake.LakeSession) -> None:
    result = _shell(lake.root, ".frobnicate\n.schema nowhere\n")
    assert "unknown command '.frobnicate'; .help lists them" in result.stderr
    assert "no view or table named 'nowhere'" in result.stderr
    assert result.returncode == 1


def _read_until(fd: int, token: bytes, timeout: float = 60.0) -> bytes:
    import os
    import select
    import time

    buffer = b""
    deadline = time.monotonic() + timeout
    while token not in buffer and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buffer += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
    return buffer


def test_terminal_session_prompts_continues_lines_and_keeps_history(
    lake: ticklake.LakeSession,
) -> None:
    pty = pytest.importorskip("pty", reason="needs a pseudo-terminal (POSIX)")
    import os

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "sql", "shell", "--lake", str(lake.root)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    try:
        banner = _read_until(master, b"ticklake> ")
        assert b"read-only (--write to change)" in banner
        os.write(master, b"select max(n) + 100\n")
        assert _read_until(master, b"...> ").endswith(b"   ...> ")  # waits for the ';'
        os.write(master, b"  as big from prices;\n")
        assert b"103" in _read_until(master, b"ticklake> ")  # max(n) = 3
        os.write(master, b".quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    history = (lake.root / "cache" / "sql_history").read_text()
    assert "select max(n) + 100\n  as big from prices;\n" in history
