"""The recently-written cache that lets batches skip rewriting catalogue rows and last-seen."""

from __future__ import annotations

from cloud.ingest.service import _Recent


def test_marked_keys_are_skipped_until_the_ttl_passes() -> None:
    recent = _Recent(ttl_s=3600.0)
    keys = [("item", "s1", "line", "door"), ("camera", "s1", "d1", "cam")]
    assert recent.stale(keys) == keys  # never written
    recent.mark(keys[:1])
    assert recent.stale(keys) == keys[1:]


def test_a_zero_ttl_never_skips() -> None:
    recent = _Recent(ttl_s=0.0)
    recent.mark(["d1"])
    assert recent.stale(["d1", "d2"]) == ["d1", "d2"]


def test_the_cache_is_bounded() -> None:
    recent = _Recent(ttl_s=3600.0, limit=10)
    recent.mark(range(11))
    recent.mark(["new"])  # over the limit: forgotten, so everything is written again
    assert recent.stale([0, 5, "new"]) == [0, 5]
