"""Behavioural events: Segment-style collection (API, browser SDK, Python client), write-key
sources, tracking plans, time-partitioned storage, retention and bulk import."""
