"""Validate the catalog offline: STAC 1.1 core schemas shipped with pystac, plus a projection v2.0.0 schema.

No schema can be downloaded here, so the projection extension's fields are checked against the schema below,
written from the extension's field table (types and lengths of ``proj:*``; unknown ``proj:`` fields fail).
Any other extension URI is reported, since it cannot be checked offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.projection import ProjectionExtension
from pystac.validation import JsonSchemaSTACValidator, validate_dict

PROJECTION_URI = ProjectionExtension.get_schema_uri()

_NUMS = {"type": "array", "items": {"type": "number"}}
_PROJ_FIELDS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "proj:code": {"type": ["string", "null"]},
        "proj:wkt2": {"type": ["string", "null"]},
        "proj:projjson": {"type": ["object", "null"]},
        "proj:geometry": {"type": "object", "required": ["type"]},
        "proj:bbox": {**_NUMS, "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]},
        "proj:centroid": {"type": "object", "required": ["lat", "lon"], "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180}}},
        "proj:shape": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0}},
        "proj:transform": {**_NUMS, "oneOf": [{"minItems": 6, "maxItems": 6}, {"minItems": 9, "maxItems": 9}]},
    },
    "patternProperties": {"^(?!proj:)": {}},
    "additionalProperties": False,
}
PROJECTION_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": PROJECTION_URI,
    "title": "Projection extension v2.0.0 (offline check written for ssl4eo-curate)",
    "type": "object",
    "required": ["stac_extensions"],
    "properties": {"stac_extensions": {"type": "array", "contains": {"const": PROJECTION_URI}}},
    "allOf": [
        {"if": {"properties": {"type": {"const": "Feature"}}},
         "then": {"properties": {"properties": _PROJ_FIELDS,
                                 "assets": {"additionalProperties": _PROJ_FIELDS}}}},
        {"if": {"properties": {"type": {"const": "Collection"}}},
         "then": {"properties": {"assets": {"additionalProperties": _PROJ_FIELDS},
                                 "item_assets": {"additionalProperties": _PROJ_FIELDS}}}},
    ],
}


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's validator with every schema served from memory; an unknown schema URI fails, never downloads."""

    def __init__(self) -> None:
        super().__init__()
        self.schema_cache[PROJECTION_URI] = PROJECTION_SCHEMA

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise pystac.errors.STACValidationError(f"schema {schema_uri} is not available offline")
        return self.schema_cache[schema_uri]


def validate_object(d: dict[str, Any], href: str = "", validator: OfflineValidator | None = None) -> list[str]:
    """Problems of one STAC JSON object ([] if valid)."""
    try:
        validate_dict(d, href=href or None, validator=validator or OfflineValidator())
    except pystac.errors.STACValidationError as e:
        detail = getattr(e, "source", None)
        why = getattr(detail, "message", "")
        msg = str(e).splitlines()[0] + (f": {why}" if why else "")
        return [f"{href or d.get('id')}: {msg}"]
    return []


def validate_catalog(catalog_json: Path, limit: int | None = None) -> list[str]:
    """Validate the root catalog, every collection and its items (the first ``limit`` of each) against the
    offline schemas."""
    v = OfflineValidator()
    cat = pystac.Catalog.from_file(str(catalog_json))
    problems = validate_object(cat.to_dict(include_self_link=False), str(catalog_json), v)
    for col in cat.get_children():
        problems += validate_object(col.to_dict(include_self_link=False), col.get_self_href() or col.id, v)
        for n, item in enumerate(col.get_items()):
            if limit is not None and n >= limit:
                break
            problems += validate_object(item.to_dict(include_self_link=False), item.get_self_href() or item.id, v)
    return problems
