"""Window arithmetic of the warp-free read path (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.fetch.grid import PatchGrid
from pipeline.fetch.windows import nested_window


def src(res: float, x0: float = 600000.0, y1: float = 5000020.0) -> tuple[float, ...]:
    return (res, 0.0, x0, 0.0, -res, y1)


@given(k=st.sampled_from([1, 2, 3, 6]), col=st.integers(1, 200), row=st.integers(1, 200),
       n=st.sampled_from([12, 24, 66]))
def test_nested_grid_maps_to_the_right_window(k: int, col: int, row: int, n: int) -> None:
    res = 10.0
    grid = PatchGrid(32632, 600000.0 + col * k * res, 5000020.0 - row * k * res, res, n * k // k * k)
    w = nested_window(src(res * k), 32632, 10_000, 10_000, grid)
    assert w is not None and w.factor == k
    pad = 0 if k == 1 else 1
    assert (w.col, w.row) == (col - pad, row - pad)
    assert w.size * k == grid.px + 2 * w.crop
    # the first kept patch pixel starts exactly at the grid's west edge
    assert 600000.0 + w.col * res * k + w.crop * res == grid.x0


def test_refuses_what_needs_a_warp() -> None:
    g = PatchGrid(32632, 600000.0, 5000020.0, 10.0, 264)
    assert nested_window(src(10.0), 32633, 10_000, 10_000, g) is None  # other zone
    assert nested_window(src(10.0, x0=600005.0), 32632, 10_000, 10_000, g) is None  # half-pixel shift
    assert nested_window(src(15.0), 32632, 10_000, 10_000, g) is None  # 1.5x: not nested
    assert nested_window(src(20.0), 32632, 10_000, 10_000, PatchGrid(32632, 600000.0, 5000020.0, 10.0, 263)) is None
    assert nested_window(src(20.0), 32632, 10_000, 10_000, g) is None  # padding falls off the west edge
    assert nested_window(src(10.0), 32632, 100, 100, g) is None  # patch larger than the source
    assert nested_window((10.0, 0.5, 600000.0, 0.0, -10.0, 5000020.0), 32632, 10_000, 10_000, g) is None  # rotated

