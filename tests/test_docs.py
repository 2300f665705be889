"""The project's words point inside the project: ``docs/dashscope-api.md`` holds the tables the specs generate,
every citation of it names one of its sections, and no file cites a document the repository does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wan_image_mcp.core.requests import catalog

ROOT = Path(__file__).parent.parent
API_PAGE = ROOT / "docs" / "dashscope-api.md"
OUTSIDE = ("wan-api" + ".md", "style" + ".md", "/work/" + "shared")
"""Documents that were never in this repository: the notes the project was first written from."""


def project_texts() -> list[Path]:
    """Every text file of server/, tests/, bench/ and docs/, and the README."""
    found = [ROOT / "README.md"]
    for folder in ("server", "tests", "bench", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".png", ".jpg", ".pyc"}:
                found.append(path)
    return found


def test_the_api_pages_tables_are_the_ones_the_specs_generate() -> None:
    page = API_PAGE.read_text(encoding="utf-8")
    assert catalog.generated_sections(page) == {name: make() for name, make in catalog.GENERATED.items()}, (
        "docs/dashscope-api.md is stale: python -m wan_image_mcp.core.requests.catalog --write docs/dashscope-api.md"
    )


def test_rewriting_a_stale_table_restores_it() -> None:
    page = API_PAGE.read_text(encoding="utf-8")
    stale = page.replace("| `wan2.7-image-pro` | messages |", "| `wan2.7-image-pro` | prompt |")
    assert stale != page
    assert catalog.regenerated(stale) == page


def anchor(heading: str) -> str:
    """A Markdown heading's anchor, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_citation_of_the_api_page_names_one_of_its_sections() -> None:
    sections = {
        anchor(line.lstrip("#")) for line in API_PAGE.read_text(encoding="utf-8").splitlines() if line[:2] == "##"
    }
    cited = {
        (path.relative_to(ROOT).as_posix(), section)
        for path in project_texts()
        for section in re.findall(r"dashscope-api\.md#([\w-]+)", path.read_text(encoding="utf-8", errors="replace"))
    }
    assert cited, "nothing cites docs/dashscope-api.md"
    assert [(path, section) for path, section in sorted(cited) if section not in sections] == []


@pytest.mark.parametrize("name", OUTSIDE)
def test_no_file_names_a_document_that_is_not_in_the_repository(name: str) -> None:
    naming = [
        path.relative_to(ROOT).as_posix()
        for path in project_texts()
        if name in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert naming == []


def test_no_file_cites_the_source_tags_of_those_notes() -> None:
    tagged = [
        f"{path.relative_to(ROOT).as_posix()}: {match.group(0)}"
        for path in project_texts()
        if path.suffix != ".js"  # the vendored SDK's minified code
        for match in re.finditer(
            r"\[(?:Q\d\d|QERR|QFAQ|SEED|ATMP|ATASK|AURL|A27)\b[^\]]*\]", path.read_text("utf-8", "replace")
        )
    ]
    assert tagged == []
