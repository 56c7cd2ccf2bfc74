"""A STAC API (Planetary Computer, Earth Search, the embedded pgstac) searched with pystac-client."""

from __future__ import annotations

import logging
import warnings

from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from pipeline.errors import SourceError
from pipeline.sources.base import SceneRef, SearchQuery, http_retry, scene_ref
from pipeline.sources.signing import href_signer, signed
from pipeline.warnings import SkippedItemWarning

log = logging.getLogger(__name__)


class StacApiSource:
    def __init__(self, url: str, *, timeout_s: float, retries: int, sign: str = "none") -> None:
        io = StacApiIO(max_retries=http_retry(retries), timeout=timeout_s)
        self._signer = href_signer(sign)
        try:
            self._client = Client.open(url, stac_io=io)
        except Exception as e:  # network errors, non-STAC answers, bad JSON
            raise SourceError(
                f"cannot open STAC API {url!r} ({type(e).__name__}: {str(e)[:120]}); check source.url and that "
                "the service is reachable"
            ) from None
        self.url = url
        self._sort = self._conforms("SORT")

    def _conforms(self, name: str) -> bool:
        try:
            from pystac_client.conformance import ConformanceClasses

            return bool(self._client.conforms_to(ConformanceClasses[name]))
        except Exception:
            return False

    def search(self, q: SearchQuery) -> list[SceneRef]:
        kw: dict = {}
        conds = []
        if q.max_cloud is not None:
            conds.append({"op": "<=", "args": [{"property": "eo:cloud_cover"}, q.max_cloud]})
        if q.platforms:
            conds.append({"op": "in", "args": [{"property": "platform"}, list(q.platforms)]})
        if conds:
            kw = {"filter": conds[0] if len(conds) == 1 else {"op": "and", "args": conds},
                  "filter_lang": "cql2-json"}
        try:
            search = self._client.search(
                collections=[q.collection], bbox=list(q.bbox), datetime=(q.start, q.end), max_items=q.limit,
                sortby=[{"field": "properties.eo:cloud_cover", "direction": "asc"}]
                if q.max_cloud is not None and self._sort else None, **kw)
            items = list(search.items())
        except APIError as e:
            raise SourceError(f"STAC API {self.url!r} rejected a search of {q.collection!r}: {str(e)[:160]}") from None
        out = []
        for it in items:
            try:
                out.append(scene_ref(it))
            except (ValueError, KeyError, TypeError) as e:
                warnings.warn(f"skipped item {it.id!r}: {e}", SkippedItemWarning, stacklevel=2)
        return signed(out, self._signer)
