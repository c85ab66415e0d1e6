"""exactmath.exp10 remembers whole grids (_GridCache): same bits as the kernel, never a shared array,
never another argument's result, and bounded in bytes."""

from __future__ import annotations

import numpy as np
import pytest

from shardmerge import exactmath
from shardmerge.exactmath import _GridCache, _pinned, exp10

pytestmark = pytest.mark.timeout(60)


def kernel(x: np.ndarray) -> np.ndarray:
    return _pinned(x, "10", exactmath._X_MIN, exactmath._X_MAX, True)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(exactmath, "_GRIDS", _GridCache())


def test_a_remembered_grid_is_the_kernels_bits_and_a_fresh_array_each_time():
    grid = 3.5793 + 1e-4 * np.arange(4600, dtype=np.float64)
    first, second = exp10(grid), exp10(grid.copy())
    expected = kernel(grid)
    assert first.tobytes() == expected.tobytes() == second.tobytes()
    assert first is not second and not np.shares_memory(first, second)
    first[:] = 0.0  # a caller that scales its grid in place must not change the next caller's
    assert exp10(grid).tobytes() == expected.tobytes()
    assert len(exactmath._GRIDS._entries) == 1


def test_different_arguments_get_their_own_results():
    rng = np.random.default_rng(5)
    grids = [rng.uniform(3.5, 4.0, 1000) for _ in range(20)]
    for g in grids + grids:  # the second pass is served from the cache
        assert exp10(g).tobytes() == kernel(g).tobytes()
    neg, pos = np.zeros(300), np.zeros(300)
    neg[0] = -0.0
    assert exp10(neg).tobytes() == kernel(neg).tobytes() and exp10(pos).tobytes() == kernel(pos).tobytes()
    shaped = grids[0][:1000].reshape(10, 100)
    assert exp10(shaped).shape == (10, 100)  # same bytes, other shape: its own entry
    assert exp10(grids[0]).shape == (1000,)


def test_an_entry_answers_only_its_own_bytes():
    cache = _GridCache()
    cache.put(b"a" * 24, (3,), np.zeros(3))
    assert cache.get(b"b" * 24, (3,)) is None


def test_the_cache_is_bounded_in_bytes(monkeypatch):
    monkeypatch.setattr(_GridCache, "MAX_BYTES", 200_000)
    rng = np.random.default_rng(1)
    for _ in range(50):
        exp10(rng.uniform(3.5, 4.0, 1000))  # 16 kB an entry
    assert exactmath._GRIDS._bytes <= 200_000
    assert len(exactmath._GRIDS._entries) == 200_000 // 16_000


def test_short_arguments_are_not_remembered():
    exp10(np.linspace(3.5, 3.6, _GridCache.MIN_VALUES - 1))
    exp10(np.float64(2.0))
    assert not exactmath._GRIDS._entries
