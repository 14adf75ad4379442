"""Ingest: readers for vendor formats, mapping, validation, quarantine, commit."""
