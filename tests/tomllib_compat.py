"""``tomllib`` on Python ≥ 3.11; a tiny fallback reader for the parts of pyproject.toml the tests
need on 3.10 (where tomllib does not exist and adding a dependency for it is not worth it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, Any]:
    """Parse *path* as TOML."""
    if sys.version_info >= (3, 11):
        import tomllib

        with path.open("rb") as f:
            return tomllib.load(f)
    import tomli  # type: ignore[import-not-found]  # pragma: no cover

    with path.open("rb") as f:  # pragma: no cover
        result: dict[str, Any] = tomli.load(f)
        return result
