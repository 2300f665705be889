"""The tools' JSON schemas in the subset every host accepts; the texts and bounds in them are the declarations'
(``declarations``, written from ``specs``), and the per-model limits a ``model`` argument would need are in the
server instructions instead (``catalog.model_limits``), read once per session rather than in three tools'
descriptions.

``portable(schema)`` rewrites a generated JSON schema into that subset: no ``$ref`` or ``$defs`` (inlined), no
``type`` arrays or ``null`` branches (an optional argument is simply optional), no ``title`` or ``default: null``
that repeat what the schema says, no empty description, and, for arguments, no unknown properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

Schema = dict[str, Any]


def portable(schema: Schema, *, closed: bool = False, described: bool = True) -> Schema:
    """A new schema saying the same in the subset every host reads. ``closed`` adds ``additionalProperties:
    false`` to every object with properties (tool arguments: unknown names are refused); ``described=False``
    leaves out descriptions (an output schema is read by programs, and docs/tools.md describes its fields)."""
    defs = cast(Mapping[str, Schema], schema.get("$defs", {}))
    return cast(Schema, _rewrite(schema, defs, closed, described))


def _rewrite(node: Any, defs: Mapping[str, Schema], closed: bool, described: bool = True) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, defs, closed, described) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    source = cast(Schema, node)
    ref = source.get("$ref")
    if isinstance(ref, str):
        target = defs[ref.removeprefix("#/$defs/")]
        merged = {**target, **{k: v for k, v in source.items() if k != "$ref"}}
        return _rewrite(merged, defs, closed, described)
    options = source.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in cast(list[Any], options) if o != {"type": "null"}]
        if len(rest) == 1:
            merged = {**cast(Schema, rest[0]), **{k: v for k, v in source.items() if k != "anyOf"}}
            return _rewrite(merged, defs, closed, described)
    out: Schema = {}
    for key, value in source.items():
        if key in ("$defs", "title") or (key == "default" and value is None):
            continue
        if key == "description" and not (described and value):  # none wanted, or an empty one
            continue
        if key in ("properties", "patternProperties"):
            children = cast(Schema, value).items()
            out[key] = {name: _rewrite(child, defs, closed, described) for name, child in children}
        else:
            out[key] = _rewrite(value, defs, closed, described)
    if isinstance(out.get("type"), list):
        types = [t for t in cast(list[str], out["type"]) if t != "null"]
        out["type"] = types[0] if len(types) == 1 else types
    if closed and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
