"""Elastic Security detections as code: load → validate → render → run → alerts."""
