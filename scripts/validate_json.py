#!/usr/bin/env python3
"""Validates JSON documents against the repository's JSON Schemas (draft 2020-12).

Usage: validate_json.py SCHEMA_FILE < documents.jsonl
Reads one JSON document per line on stdin; prints one line per document: "ok" or "error: <message>".
Exits 0 when every document is valid, 1 otherwise. The schemas' relative $refs resolve inside schemas/.
"""
import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource


def main() -> int:
    schema_path = pathlib.Path(sys.argv[1]).resolve()
    registry = Registry()
    for path in schema_path.parent.glob("*.json"):
        resource = Resource.from_contents(json.loads(path.read_text()))
        registry = registry.with_resource(path.name, resource).with_resource(resource.id(), resource)
    schema = json.loads(schema_path.read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
    failed = False
    for line in sys.stdin:
        if not line.strip():
            continue
        errors = sorted(validator.iter_errors(json.loads(line)), key=lambda e: list(e.path))
        if errors:
            failed = True
            print("error: " + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors))
        else:
            print("ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
