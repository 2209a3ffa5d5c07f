"""The manual's API reference (docs/reference/api.md), generated from the chart's CRD: every field of a
RerankerDeployment with its type, default, limits, validation messages and description.

The CRD is itself generated from the API models (`make crd`), so the page says exactly what the API server
enforces. Usage: `python -m rerank_localdev.api_reference [write|check]` (`make api-reference`);
tests/docs/test_docs_api_reference.py fails while the page differs from what the CRD gives.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .generated import write_or_check

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "charts" / "rerank-operator" / "crds" / "rerankerdeployments.rerank.io.yaml"
OUTPUT = REPO / "docs" / "reference" / "api.md"

HEADER = """\
<!-- Generated from the CRD by `python -m rerank_localdev.api_reference` (make api-reference): do not edit by hand. -->
# API reference

`RerankerDeployment` (`{group}/{version}`, short name `{short}`), generated from the CRD the chart installs.
Each field gives its type, default, limits and the messages the API server answers when a rule is broken; what
the API refuses beyond single fields is in [what the API refuses](admission.md). `kubectl explain rrd.spec
--recursive` shows the same schema from a cluster.

"""

# The schema keywords shown as limits, in this order, with how each reads.
LIMITS = (
    ("minimum", "minimum {}"), ("maximum", "maximum {}"), ("exclusiveMinimum", "above {}"),
    ("minLength", "at least {} character"), ("maxLength", "at most {} character"),
    ("minItems", "at least {} item"), ("maxItems", "at most {} item"),
    ("maxProperties", "at most {} entry"), ("format", "format {}"),
)


def code(text: str) -> str:
    """A Markdown code span that holds any text (a pattern may contain backticks)."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" or text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def prose(text: str) -> str:
    """A description or message as one Markdown paragraph: `<name>` is text, not an HTML tag, and `*`/`_` are not
    emphasis."""
    text = " ".join(text.split())
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*"), ("_", "\\_")):
        text = text.replace(char, escaped)
    return text


def type_of(schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "integer or string"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {type_of(schema.get('items') or {})}"
    if kind == "object" and "additionalProperties" in schema and not schema.get("properties"):
        return f"map of string to {type_of(schema['additionalProperties'])}"
    return str(kind)


def counted(text: str, value: Any) -> str:
    """"at most {} item" with its number, the noun in the plural where the number asks for it."""
    words = text.format(value)
    if isinstance(value, int) and value != 1 and not words.endswith(str(value)):
        words = words[:-1] + "ies" if words.endswith("entry") else words + "s"
    return words


def limits(schema: Mapping[str, Any]) -> list[str]:
    found = [counted(text, schema[key]) for key, text in LIMITS if key in schema]
    if "enum" in schema:
        found.append("one of " + ", ".join(code(json.dumps(v)) for v in schema["enum"]))
    if "pattern" in schema:
        found.append("matches " + code(schema["pattern"]))
    if schema.get("x-kubernetes-list-type") == "map":
        found.append("a list keyed by " + ", ".join(code(k) for k in schema.get("x-kubernetes-list-map-keys") or []))
    return found


def fields(path: str, schema: Mapping[str, Any], required: bool = False) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """(path, schema, required) of this field and every field under it, depth first in the CRD's order."""
    yield path, schema, required
    items = schema.get("items") if schema.get("type") == "array" else None
    inner = items if items and items.get("properties") else schema
    needed = set(inner.get("required") or [])
    suffix = "[]" if inner is items else ""
    for name, child in (inner.get("properties") or {}).items():
        yield from fields(f"{path}{suffix}.{name}", child, name in needed)
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping) and values.get("properties"):
        yield from fields(f"{path}.<key>", values)


def section(path: str, schema: Mapping[str, Any], required: bool) -> str:
    level = "##" if path.count(".") == 0 else "###"
    facts = [f"Type: {type_of(schema)}" + (" (required)" if required else "")]
    if "default" in schema:
        facts.append("Default: " + code(json.dumps(schema["default"])))
    found = limits(schema) + limits(schema.get("items") or {}) if schema.get("type") == "array" else limits(schema)
    if found:
        facts.append("Limits: " + "; ".join(found))
    lines = [f"{level} {code(path)}", "", " · ".join(facts)]
    if schema.get("description"):
        lines += ["", prose(schema["description"])]
    rules = (schema.get("x-kubernetes-validations") or []) + (
        (schema.get("items") or {}).get("x-kubernetes-validations") or [])
    if rules:
        lines += ["", "Refused with:", ""] + [f"- {prose(rule['message'])}" for rule in rules]
    return "\n".join(lines) + "\n"


def render() -> str:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]["properties"]
    header = HEADER.format(group=crd["spec"]["group"], version=version["name"], short=crd["spec"]["names"]["shortNames"][0])
    parts = [section(path, schema, required) for top in ("spec", "status")
             for path, schema, required in fields(top, root[top])]
    return header + "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    return write_or_check(argv, OUTPUT, render, "rerank_localdev.api_reference", "run `make api-reference`")


if __name__ == "__main__":
    sys.exit(main())
