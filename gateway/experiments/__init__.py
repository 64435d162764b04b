"""Experiment reports over the request log: per-arm feedback statistics (`stats`), the
log queries (`data`), the report itself (`report`) and its plot (`plot`)."""
