#!/usr/bin/env python3
"""Validates an OpenAPI 3.1 document with openapi-spec-validator, and the request examples against their schemas.

Usage: check_openapi.py DOCUMENT.json|DOCUMENT.yaml
Prints "ok" and exits 0 when the document is valid OpenAPI 3.1 and every request-body example validates against
its media type's schema (with the document's components); otherwise prints one error per line and exits 1.
"""
import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        if sys.argv[1].endswith((".yaml", ".yml")):
            import yaml

            document = yaml.safe_load(handle)
        else:
            document = json.load(handle)
    errors = []
    if document.get("openapi", "").split(".")[:2] != ["3", "1"]:
        errors.append(f"not an OpenAPI 3.1 document: openapi={document.get('openapi')!r}")
    for error in OpenAPIV31SpecValidator(document).iter_errors():
        errors.append(f"openapi: {error.message} at {'/'.join(str(p) for p in error.absolute_path)}")

    # Request examples must satisfy their own schemas. The document itself serves as the schema resource (unknown
    # keywords are ignored), so that a media type's schema and its nested "#/components/..." references resolve.
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method.startswith("x-"):
                continue
            body = operation.get("requestBody", {})
            for media, content in body.get("content", {}).items():
                pointer = f"#/paths/{pointer_escape(path)}/{method}/requestBody/content/{pointer_escape(media)}/schema"
                validator = Draft202012Validator({**document, "$id": "urn:openapi-document", "$ref": pointer})
                for name, example in content.get("examples", {}).items():
                    for error in validator.iter_errors(example.get("value")):
                        errors.append(f"example {method.upper()} {path} {media} {name}: {error.message}")
    for error in errors:
        print(error)
    if errors:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
