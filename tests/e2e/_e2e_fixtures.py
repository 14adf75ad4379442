"""Helpers shared by the browser tests (see ``conftest.py``; a unique module name)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "backtest"))

from _engine_fixtures import GENERATED_DAYS, OPTIONS, SPOT

BASE_RUN = "straddle-base"
# A job started from the browser (a backtest, a sweep, a validation) on a loaded 2-core CI
# machine running the whole suite: wait for its end this long (ms).
JOB_TIMEOUT_MS = 180_000


def straddle_spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "e2e_straddle",
        "universe": {
            "underlying": "BANKNIFTY",
            "options_dataset": OPTIONS,
            "underlying_dataset": SPOT,
        },
        "time": {
            "start": GENERATED_DAYS[0].isoformat(),
            "end": GENERATED_DAYS[-1].isoformat(),
            "entry_windows": ["09:20-09:25"],
            "exit_time": "15:20",
        },
        "legs": [
            {"name": "ce", "opt_type": "CE", "side": "sell"},
            {"name": "pe", "opt_type": "PE", "side": "sell"},
        ],
        "rebalance": {"kind": "every", "minutes": 60},
    }
    data.update(changes)
    return data


@dataclass
class LiveServer:
    url: str
    lake_root: Path
    app: Any


@contextmanager
def serve_app(app: Any, root: Path) -> Iterator[LiveServer]:
    """Run ``app`` with uvicorn in a thread on a free port of 127.0.0.1 for the block.

    The socket is bound here and handed to uvicorn as is: no window in which another
    process (the other xdist worker, another test's server) could take the port first.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 60 s")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", root, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.jobs.shutdown(wait=False)


def wait_for_plot(page: Any, element_id: str) -> None:
    """Until Plotly has drawn traces into the element (its drawing is async to the tables)."""
    page.wait_for_function(
        """id => {
          const chart = document.getElementById(id);
          const drawn = chart && chart.data && chart.data.length;
          return Boolean(drawn && chart.querySelector(".main-svg"));
        }""",
        arg=element_id,
    )


# Holds back, in the page, every answer to a request whose URL contains `watched` but not
# `fresh` until the page has finished with the answer to the `fresh` one; then lets them
# through. So an older request's answer always lands after the newest one's, however slow
# the machine is (no guessed delay). `window.__answers` counts what happened: `pending`
# answers the page has not handled yet, `stale_after` older answers it handled after the
# fresh one. Wait for `pending === 0 && stale_after >= 1`, then check what is shown.
_STALE_ANSWERS_LAST = """
(() => {
  const [watched, freshPart] = %s;
  const state = window.__answers = { pending: 0, fresh_done: false, stale_after: 0, held: [] };
  const fetchNow = window.fetch.bind(window);
  // `done` runs once the page's own code has run on the answer: TL.api awaits
  // response.json() and the caller draws in the same microtask chain, before the next task.
  const handled = (response, done) => {
    const json = response.json.bind(response);
    response.json = () => json().then((value) => { setTimeout(done, 0); return value; });
    return response;
  };
  window.fetch = (url, options) => {
    const text = String(url);
    if (!text.includes(watched)) return fetchNow(url, options);
    state.pending += 1;
    const answer = fetchNow(url, options);
    if (text.includes(freshPart)) {
      return answer.then((r) => handled(r, () => {
        state.pending -= 1;
        state.fresh_done = true;
        state.held.splice(0).forEach((release) => release());
      }));
    }
    return answer.then((r) => new Promise((resolve) => {
      const release = () => resolve(handled(r, () => {
        state.pending -= 1;
        if (state.fresh_done) state.stale_after += 1;
      }));
      if (state.fresh_done) release(); else state.held.push(release);
    }));
  };
})();
"""
STALE_ANSWERS_HANDLED = "() => window.__answers.pending === 0 && window.__answers.stale_after >= 1"


def stale_answers_last(watched: str, fresh: str) -> str:
    """An init script (``page.add_init_script``): see ``_STALE_ANSWERS_LAST``."""
    return _STALE_ANSWERS_LAST % json.dumps([watched, fresh])
