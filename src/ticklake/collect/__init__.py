"""Live data: exchange collectors, raw parts, backfill, the orchestrator and its health file."""
