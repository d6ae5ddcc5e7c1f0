from __future__ import annotations

from backend.engines.llm_cache import KvStateCache, SavedState, common_prefix


def state(tokens: list[int], nbytes: int = 10) -> SavedState:
    return SavedState(tokens=tokens, blob=b"x" * nbytes, nbytes=nbytes)


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_best_match_prefers_longest_shared_prefix() -> None:
    cache = KvStateCache(1000)
    cache.put("a", state([1, 2, 3, 4]))
    cache.put("b", state([1, 2, 9, 9, 9]))
    match = cache.best_match([1, 2, 3, 4, 5])
    assert match is not None and match[0] == "a" and match[2] == 4
    assert cache.best_match([7, 7]) is None


def test_budget_evicts_least_recently_used() -> None:
    cache = KvStateCache(25)
    cache.put("a", state([1], 10))
    cache.put("b", state([2], 10))
    assert cache.best_match([1]) is not None  # touch a
    cache.put("c", state([3], 10))
    assert cache.best_match([2]) is None  # b was the least recently used
    assert cache.best_match([1]) is not None and cache.best_match([3]) is not None
    assert cache.size <= 25


def test_longer_state_of_same_chat_replaces_shorter() -> None:
    cache = KvStateCache(1000)
    cache.put("turn1", state([1, 2, 3]))
    cache.put("turn2", state([1, 2, 3, 4, 5]))
    assert len(cache) == 1


def test_state_over_budget_is_not_kept() -> None:
    cache = KvStateCache(5)
    cache.put("big", state([1], 6))
    assert len(cache) == 0
