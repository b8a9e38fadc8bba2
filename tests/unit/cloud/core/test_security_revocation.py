"""The revocation cache answers from memory for its time, then asks again; memory stays bounded."""

from __future__ import annotations

from collections.abc import Callable

from cloud.core.security import RevocationCache


def _counting(answer: bool) -> tuple[list[str], Callable[[str], bool]]:
    asked: list[str] = []

    def lookup(jti: str) -> bool:
        asked.append(jti)
        return answer

    return asked, lookup


def test_answers_are_reused_within_the_cache_time() -> None:
    cache = RevocationCache(ttl_s=3600)
    asked, lookup = _counting(True)
    assert cache.is_revoked("a", lookup)
    assert cache.is_revoked("a", lookup)
    assert asked == ["a"]


def test_no_cache_time_asks_every_time() -> None:
    cache = RevocationCache(ttl_s=0)
    asked, lookup = _counting(False)
    for _ in range(3):
        assert not cache.is_revoked("b", lookup)
    assert asked == ["b", "b", "b"]


def test_memory_is_bounded() -> None:
    cache = RevocationCache(ttl_s=3600, max_entries=10)
    _, lookup = _counting(False)
    for i in range(25):
        cache.is_revoked(str(i), lookup)
    assert len(cache._seen) <= 10
