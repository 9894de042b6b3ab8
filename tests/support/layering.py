"""What importing a module really loads: the layering tests' probe, run in a fresh
interpreter so nothing the test process already imported hides a dependency."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Sequence

_PROBE = """
import importlib, json, sys
forbidden = set(sys.argv[1].split(","))
found = {}
for name in sys.argv[2:]:
    importlib.import_module(name)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & forbidden)
    if loaded:
        found[name] = loaded
        break  # later modules would be blamed for what this one loaded
print(json.dumps(found))
"""


def forbidden_imports(modules: Sequence[str], forbidden: Iterable[str]) -> dict[str, list[str]]:
    """The first of `modules` (imported in order) after which a top-level package of
    `forbidden` is loaded, with those packages; {} when none is."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(sorted(forbidden)), *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found: dict[str, list[str]] = json.loads(run.stdout)
    return found
