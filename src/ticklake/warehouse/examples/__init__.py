"""Example SQL projects shipped with ticklake (``ticklake sql init --examples SET``).

- ``nse``: the option chain's ATM map per second and the 09:15-09:20 opening window, over
  the demo lake's ``bronze.banknifty_options`` / ``bronze.banknifty_spot`` /
  ``silver.banknifty_spot_1m``;
- ``crypto``: daily trade and quote summaries, our 1 m bars against the exchange's 1 m
  klines, funding and open interest per hour, over the collector's ``binance_*`` datasets.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ticklake.errors import ConfigError

EXAMPLE_SETS = ("nse", "crypto")


def copy_examples(example_set: str, project: Path) -> list[Path]:
    """Copy an example set's models into ``project/models``; never overwrite a file."""
    if example_set not in EXAMPLE_SETS:
        raise ConfigError(
            f"unknown example set {example_set!r}; choose one of {', '.join(EXAMPLE_SETS)}"
        )
    source = resources.files(__package__) / example_set / "models"
    target = project / "models"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for item in sorted(source.iterdir(), key=lambda i: i.name):
        if not item.name.endswith(".sql"):
            continue
        path = target / item.name
        if path.exists():
            raise ConfigError(
                f"{path} exists; move it away or copy the examples into another --project"
            )
        path.write_text(item.read_text())
        written.append(path)
    return written
