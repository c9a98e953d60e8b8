"""JSON request bodies with a bound on nesting: `[[[[...]]]]` is a clear 400, never a RecursionError and a 500."""

import json
from typing import Any

MAX_DEPTH = 32


def parse_json(data: bytes | str) -> Any:
    """Parse a JSON body; ValueError (with the reason) for bad JSON or nesting deeper than MAX_DEPTH."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value
