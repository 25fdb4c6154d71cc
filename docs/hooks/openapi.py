"""MkDocs hook: the HTTP API of ``aekit serve`` (docs/guides/serve.md) rendered from its OpenAPI schema.

The page holds the marker ``<!-- http-api -->``; at build time it becomes a table of every route (method,
path, summary) and, per route, its query parameters and JSON body fields with their types, defaults,
ranges and descriptions, all read from ``aekit.serve.app.create_app().openapi()``: the schema the server
itself serves at ``/openapi.json``, so the page cannot drift from it.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- http-api -->"
PAGE = "guides/serve.md"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _type(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A short type: ``integer 1..64``, ``string or array or null``, ``one of a, b``."""
    if "$ref" in schema:
        return _type(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "anyOf" in schema:
        return " or ".join(_type(s, components) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{e}`" for e in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    t = schema.get("type", "any")
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    if lo is not None or hi is not None:
        left = "(" if "exclusiveMinimum" in schema else "["
        right = ")" if "exclusiveMaximum" in schema else "]"
        t += f" {left}{_num(lo) if lo is not None else '-inf'}, {_num(hi) if hi is not None else 'inf'}{right}"
    if t == "array" and schema.get("items"):
        t += " of " + _type(schema["items"], components)
    if "maxLength" in schema:
        t += f", at most {schema['maxLength']} characters"
    return t


def _fields(rows: list[tuple[str, dict[str, Any], bool]], components: dict[str, Any]) -> list[str]:
    out = ["| field | type | default | what |", "| --- | --- | --- | --- |"]
    for name, schema, required in rows:
        default = "required" if required else (f"`{schema['default']}`" if "default" in schema else "")
        what = schema.get("description", "")
        out.append(f"| `{name}` | {_cell(_type(schema, components))} | {_cell(default)} | {_cell(what)} |")
    return out


def _anchor(method: str, path: str) -> str:
    return (method + "-" + path.strip("/").replace("/", "-").replace("{", "").replace("}", "")).lower()


def api_markdown() -> str:
    """The generated Markdown: the route table, then each route's parameters and body."""
    from aekit.serve.app import create_app

    schema = create_app().app.openapi()  # the Guard wraps the FastAPI app; its schema is /openapi.json
    components = schema.get("components", {}).get("schemas", {})
    routes = [(m.upper(), p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]
    out = ["| method | path | what |", "| --- | --- | --- |"]
    out += [f"| {m} | [`{p}`](#{_anchor(m, p)}) | {_cell(op.get('summary', ''))} |" for m, p, op in routes]
    for method, path, op in routes:
        out += ["", f"### {method} `{path}` {{#{_anchor(method, path)}}}", "", _cell(op.get("summary", "")) + "."]
        if op.get("description"):
            out += ["", op["description"]]
        params = [(q["name"], q.get("schema", {}), q.get("required", False))
                  for q in op.get("parameters", []) if q.get("in") == "query"]
        if params:
            out += ["", "Query parameters:", "", *_fields(params, components)]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            if "$ref" in body:
                body = components[body["$ref"].rsplit("/", 1)[1]]
            required = set(body.get("required", []))
            rows = [(k, v, k in required) for k, v in body.get("properties", {}).items()]
            out += ["", "JSON body" + (" (no other fields)" if body.get("additionalProperties") is False else "")
                    + ":", "", *(_fields(rows, components) if rows else ["(an empty object)"])]
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its {MARKER} marker: the HTTP API reference would be missing")
    return markdown.replace(MARKER, api_markdown())
