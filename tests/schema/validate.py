#!/usr/bin/env python3
"""Validates registry files against docs/servers.schema.json (JSON Schema draft 2020-12).
Usage: validate.py SCHEMA FILE... — exits 1 naming each file and error."""
import json
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("tests/schema/validate.py needs the Python jsonschema package: pip install jsonschema")

schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
bad = 0
for path in sys.argv[2:]:
    with open(path) as f:
        doc = json.load(f)
    for error in validator.iter_errors(doc):
        bad += 1
        print(f"{path}: {'/'.join(map(str, error.absolute_path))}: {error.message}", file=sys.stderr)
sys.exit(1 if bad else 0)
