"""The download driver's bookkeeping (no cluster needed where there is nothing to fetch)."""

from __future__ import annotations


def test_ledger_reconciled_from_staging(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A location staged by a worker whose driver died before the ledger line is recorded complete on rerun."""
    import numpy as np

    from pipeline.fetch.request import LocationTask
    from pipeline.fetch.run import run_fetch
    from pipeline.ledger import read_ledger
    from pipeline.staging import SeasonPick, StagedLocation, StagedProduct, write_location

    pick = SeasonPick(0, "2023-03-20T10:00:00+00:00", "S", "", "c", 0.0, 0.0)
    meta = StagedLocation(3, 1.0, 2.0, 32631, {"p": StagedProduct("p", ("b",), "uint16", 2, 10.0,
                                                                  (10, 0, 0, 0, -10, 0), (pick,))})
    write_location(tmp_path, meta, {"p": np.zeros((1, 1, 2, 2), np.uint16)})
    s = run_fetch(None, [LocationTask(3, 1.0, 2.0, 32631)], None, tmp_path)  # nothing to do: no client needed
    assert s.skipped_complete == 1
    e = read_ledger(tmp_path)[3]
    assert e.status == "complete" and "recovered" in e.detail


def test_a_window_with_any_unreadable_candidate_is_retried() -> None:
    from collections import Counter

    from pipeline.fetch.location import verdict
    from pipeline.ledger import RETRYABLE, Reason

    assert verdict(Counter({Reason.TOO_CLOUDY: 4, Reason.NODATA: 1})) is Reason.TOO_CLOUDY
    assert verdict(Counter({Reason.NODATA: 2, Reason.TOO_CLOUDY: 1})) is Reason.NODATA
    mixed = verdict(Counter({Reason.TOO_CLOUDY: 4, Reason.SOURCE_ERROR: 1}))
    assert mixed is Reason.SOURCE_ERROR and mixed in RETRYABLE


def test_a_location_staged_twice_at_once_keeps_one_complete_folder(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two tasks of one location (Dask reran it) both pass the 'already staged?' check; the second rename meets
    the first one's folder and must keep it, not fail the location."""
    import os

    import numpy as np

    from pipeline import staging
    from pipeline.staging import SeasonPick, StagedLocation, StagedProduct, write_location

    pick = SeasonPick(0, "2023-03-20T10:00:00+00:00", "S", "", "c", 0.0, 0.0)
    meta = StagedLocation(5, 1.0, 2.0, 32631, {"p": StagedProduct("p", ("b",), "uint16", 2, 10.0,
                                                                  (10, 0, 0, 0, -10, 0), (pick,))})
    first = np.ones((1, 1, 2, 2), np.uint16)
    rename = os.rename

    def twin_wins(src, dst):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(os, "rename", rename)
        write_location(tmp_path, meta, {"p": first})  # the twin finishes first
        rename(src, dst)  # now ours: ENOTEMPTY/EEXIST

    monkeypatch.setattr(os, "rename", twin_wins)
    folder = write_location(tmp_path, meta, {"p": np.full((1, 1, 2, 2), 2, np.uint16)})
    assert staging.complete_ids(tmp_path) == {5}
    assert (staging.read_array(folder, "p") == 1).all()  # the first complete folder, untouched
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # our temporary folder removed


def test_a_patch_across_the_antimeridian_searches_two_narrow_boxes() -> None:
    import datetime as dt

    from pipeline.fetch.grid import location_centre, lonlat_boxes, patch_grid, utm_epsg
    from pipeline.fetch.location import _search
    from pipeline.sources import SceneRef, SearchQuery

    lon, lat = 179.995, -16.5  # Fiji's Vanua Levu: a 2.6 km patch here spans both sides of 180 degrees
    epsg = utm_epsg(lon, lat)
    grid = patch_grid(location_centre(lon, lat, epsg), epsg, 10.0, 264)
    boxes = lonlat_boxes(grid)
    assert len(boxes) == 2
    (w1, s1, e1, n1), (w2, s2, e2, n2) = boxes
    assert 179.9 < w1 < e1 == 180.0 and -180.0 == w2 < e2 < -179.9 and (s1, n1) == (s2, n2)
    assert len(lonlat_boxes(patch_grid(location_centre(179.5, lat, epsg), epsg, 10.0, 264))) == 1

    t = dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    east = SceneRef("east", "c", t, 1.0, epsg, ())
    both = SceneRef("both", "c", t, 2.0, epsg, ())
    west = SceneRef("west", "c", t, 3.0, epsg, ())

    class TwoSides:  # a catalog that answers by the side of the antimeridian a box lies on
        def __init__(self) -> None:
            self.boxes: list[tuple[float, ...]] = []

        def search(self, q: SearchQuery) -> list[SceneRef]:
            self.boxes.append(q.bbox)
            return [east, both] if q.bbox[0] > 0 else [both, west]

    src = TwoSides()
    found = _search(src, SearchQuery("c", boxes[0], t, t), boxes)
    assert [s.id for s in found] == ["east", "both", "west"] and src.boxes == list(boxes)
