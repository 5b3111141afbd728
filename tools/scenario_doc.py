"""Write docs/scenario-language.md from the scenario schema (realip/schema.py and the rooms'
settings.py): ``python tools/scenario_doc.py`` (tests/test_schema.py checks it is current)."""

from __future__ import annotations

from pathlib import Path

from realip.schema import markdown

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    out = ROOT / "docs" / "scenario-language.md"
    out.write_text(markdown() + "\n", encoding="utf-8")
    print(f"wrote {out}")
