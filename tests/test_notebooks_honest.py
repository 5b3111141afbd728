"""The course asks before it answers: for every *Predict* in the stored notebooks, neither the
cell that reveals it nor any output above it shows the answer.

A prediction cell is a code cell calling ``predict(``; its answer is what the library computed
(the ``Answer:`` line of its stored text face).  The answer must not appear

* in that cell's source (it is computed, never typed), nor
* in any stored output (text or HTML) of a cell above it in the same notebook,

with three allowances, each an input of the question rather than its answer:

* the *Predict* question itself lists it (e.g. "which of ``127.0.0.1, 1.94.170.163,
  172.16.0.116`` does LB 3 keep?"), or it is one of a pick-one question's options;
* a link's endpoints (``172.16.0.116:41316 -> 172.16.0.200:1883``, what any capture shows)
  are facts of the chain, not outcomes;
* an earlier prediction's collapsed reveal (its answer and trace, about another question).

Its static face keeps the answer collapsed behind a summary that gives nothing away.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted([*NOTEBOOKS.glob("*.ipynb"), *(NOTEBOOKS / "instructor").glob("*.ipynb")])


def _source(cell: dict[str, Any]) -> str:
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


def _outputs_text(cell: dict[str, Any]) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]))
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                text = value if isinstance(value, str) else "".join(value)
                parts.append(html.unescape(re.sub(r"<[^>]+>", " ", text)))
    return "\n".join(parts)


_ENDPOINTS = re.compile(r"\S+ -> (?:[a-z]\w* )?\S+")


def _visible(cell: dict[str, Any]) -> str:
    """What a cell's outputs show before anything is revealed: a predict cell's question and
    options (not its collapsed answer), and no link endpoints."""
    text = _outputs_text(cell)
    if "predict(" in _source(cell):
        text = "\n".join(
            re.sub(r"<details.*?</details>", " ", "".join(o["data"]["text/html"]), flags=re.S)
            for o in cell.get("outputs", []) if "text/html" in o.get("data", {}))
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return _ENDPOINTS.sub(" ", text)


def _contains(haystack: str, value: str) -> bool:
    # the value as a whole token: "35" is not in "0x0035", "172.16.0.116" is in
    # "172.16.0.116:41316"
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)", haystack) is not None


def _predictions(path: Path) -> list[tuple[int, str, str]]:
    """(cell index, answer, question markdown) of every predict cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or "predict(" not in _source(cell):
            continue
        plain = _outputs_text(cell)
        m = re.search(r"^Answer: (.+)$", plain, re.M)
        assert m, f"{path.name} cell {i}: a predict cell without a stored answer"
        question = next((_source(c) for c in reversed(cells[:i])
                         if c["cell_type"] == "markdown"), "")
        found.append((i, m.group(1).strip(), question))
    return found


COURSE = [p for p in PATHS if _predictions(p)]


def test_the_course_asks_predictions_in_every_topic_notebook() -> None:
    names = {p.stem for p in COURSE}
    for stem in ("00-start-here", "01-proxy-protocol-bytes", "02-tcp-single-tier",
                 "03-tcp-multi-tier", "04-websocket-single-tier", "05-websocket-multi-tier",
                 "06-haproxy", "07-tls-and-certificates", "10-your-own-config"):
        assert stem in names
    assert sum(len(_predictions(p)) for p in COURSE) >= 26


@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_no_answer_above_its_predict_or_in_its_source(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    problems = []
    for i, answer, question in _predictions(path):
        source = _source(cells[i])
        if _contains(source, answer):
            problems.append(f"cell {i} types its answer {answer!r} in its source")
        options = re.search(r"Options: ([^\n<]*)", "".join(
            "".join(o.get("data", {}).get("text/html", "")) for o in cells[i].get("outputs", [])))
        if _contains(question, answer) or (options and answer in html.unescape(options[1])):
            continue  # the question lists it among the options
        for k in range(i):
            above = cells[k]
            if above["cell_type"] != "code":
                continue
            if options is not None and "predict(" in _source(above):
                continue  # the same options, offered by an earlier question
            if _contains(_visible(above), answer):
                problems.append(f"cell {k}'s output shows {answer!r}, the answer of the "
                                f"Predict in cell {i}")
    assert problems == []


@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_reveals_stay_collapsed_behind_a_neutral_summary(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for i, answer, _question in _predictions(path):
        outs = [o for o in cells[i].get("outputs", []) if "text/html" in o.get("data", {})]
        assert outs, f"cell {i}: no static HTML face"
        page = "".join(outs[0]["data"]["text/html"])
        summary = page.split("<summary", 1)[1].split("</summary>", 1)[0]
        assert "<details" in page and html.escape(answer) not in summary
        assert page.index("<details") < page.index("<b>Answer:</b>")
        assert html.escape(answer) in page.split("<b>Answer:</b>", 1)[1]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_no_reveal_types_its_answer(path: Path) -> None:
    """Old-style ``reveal("…literal answer…")`` or ``explanation="…"`` cells are gone from every
    notebook, the live lab's included."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            assert "reveal(" not in _source(cell), _source(cell)[:120]
