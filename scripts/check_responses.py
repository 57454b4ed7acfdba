#!/usr/bin/env python3
"""Checks HTTP exchanges a test saw against the OpenAPI document the gateway served.

Usage: check_responses.py DOCUMENT.json EXCHANGES.jsonl
Each line of EXCHANGES is {"method", "path", "status", "content_type", "body"} (body: the text, or null). For every
exchange on a documented operation, the status must be documented (or a `default` response), and a JSON body must
validate against the schema of its media type. An exchange on a route the document does not have must have been
answered 404 or 405; CORS preflights (OPTIONS) are not operations. Prints "ok" and exits 0, or one line per violation and exits 1.
"""
import json
import re
import sys

from jsonschema import Draft202012Validator


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def resolve(document, node):
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        target = document
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        document = json.load(handle)
    templates = []
    for path in document.get("paths", {}):
        segments = ["[^/]+" if part.startswith("{") else re.escape(part) for part in path.split("/")]
        pattern = "^" + "/".join(segments) + "$"
        # Literal paths win over templated ones (/api/v1/events before /api/v1/calls/{id}).
        templates.append((path.count("{"), path, re.compile(pattern)))
    templates.sort()
    errors = []
    checked = 0
    with open(sys.argv[2], encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            exchange = json.loads(line)
            method = exchange["method"].lower()
            if method == "options":
                # CORS preflights are answered by the CORS layer for every route: not operations of the API.
                continue
            status = str(exchange["status"])
            path = exchange["path"].split("?", 1)[0]
            where = f"{exchange['method']} {path} → {status}"
            match = next((template for _, template, regex in templates if regex.match(path)), None)
            operation = document["paths"].get(match, {}).get(method) if match else None
            if operation is None:
                if status not in ("404", "405"):
                    errors.append(f"{where}: the route is not in the document")
                continue
            checked += 1
            responses = operation.get("responses", {})
            response = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
            if response is None:
                errors.append(f"{where}: status {status} is not documented for {exchange['method']} {match}")
                continue
            response = resolve(document, response)
            content_type = (exchange.get("content_type") or "").split(";", 1)[0].strip().lower()
            body = exchange.get("body")
            if not body or not content_type.endswith("json"):
                continue
            content = response.get("content", {})
            media = next((name for name in content if name.split(";", 1)[0].strip().lower() == content_type), None)
            if media is None:
                errors.append(f"{where}: media type {content_type} is not documented (documented: {sorted(content)})")
                continue
            if "schema" not in content[media]:
                continue
            try:
                instance = json.loads(body)
            except json.JSONDecodeError as error:
                errors.append(f"{where}: the body is not JSON: {error}")
                continue
            # The response object may live under components: validate through a pointer to wherever it is.
            pointer = response_pointer(document, operation, match, method, status, responses, media)
            validator = Draft202012Validator({**document, "$id": "urn:openapi-document", "$ref": pointer})
            for error in validator.iter_errors(instance):
                location = "/".join(str(part) for part in error.absolute_path)
                errors.append(f"{where}: {error.message} at /{location}")
    for error in errors[:200]:
        print(error)
    if errors:
        return 1
    print("ok")
    return 0


def response_pointer(document, operation, path, method, status, responses, media):
    key = status if status in responses else (status[0] + "XX" if status[0] + "XX" in responses else "default")
    node = responses[key]
    if "$ref" in node:
        pointer = node["$ref"]
        target = resolve(document, node)
        while "$ref" in target:
            pointer = target["$ref"]
            target = resolve(document, target)
        return f"{pointer}/content/{pointer_escape(media)}/schema"
    return f"#/paths/{pointer_escape(path)}/{method}/responses/{key}/content/{pointer_escape(media)}/schema"


if __name__ == "__main__":
    sys.exit(main())
