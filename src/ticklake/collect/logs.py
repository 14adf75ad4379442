"""The live side's log files: rotating, beside what they describe, and the console too."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


def rotating_log(directory: Path, filename: str) -> Path:
    """Log ``ticklake.collect`` at INFO to ``directory/filename`` as well (10 MB x 5)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ticklake.collect")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return path
