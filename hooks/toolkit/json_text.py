"""JSON file content as the originals' json-file and hiera hooks wrote it, byte for byte."""
from __future__ import annotations

import json
from typing import Any


def original_layout(value: Any) -> str:
    """4-space indent, sorted keys, ``,``/``: `` separators, no trailing newline: ``json.dump``'s output there."""
    return json.dumps(value, indent=4, sort_keys=True, separators=(",", ": "))
