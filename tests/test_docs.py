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


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""The README and the pages it links to."""


def uncoded(path: Path) -> str:
    """A page without its fenced code blocks, where a ``#`` line is no heading."""
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def anchors(path: Path) -> set[str]:
    """Every heading's anchor as GitHub makes it: a repeated heading's second anchor gets ``-1``, and so on."""
    made: set[str] = set()
    for line in uncoded(path).splitlines():
        heading = re.match(r"^#{1,6} (.*)$", line)
        if heading is not None:
            base = anchor(heading.group(1))
            made.add(next(name for n in range(100) if (name := f"{base}-{n}" if n else base) not in made))
    return made


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """The relative links (``[x](target)``, ``<img src>``) and ``#anchors`` of a page that lead nowhere; code spans
    hold no links."""
    broken: list[str] = []
    prose = re.sub(r"`[^`\n]*`", "", uncoded(path))
    for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", prose):
        link = next(t for t in target if t)
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):
            continue  # https:, mailto:: outside the repository
        file, _, section = link.partition("#")
        into = (path.parent / file).resolve() if file else path
        if not into.exists() or (section and (into.suffix != ".md" or section not in anchors(into))):
            broken.append(f"{path.relative_to(root).as_posix()}: {link}")
    return broken


def test_every_relative_link_and_anchor_of_the_readme_and_docs_resolves() -> None:
    assert len(PAGES) > 10
    assert [link for page in PAGES for link in broken_links(page)] == []


def test_a_link_to_a_missing_page_or_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Run it for a team\n\n## Why `obstore`?\n\n## Why `obstore`?\n", "utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n\n[a](other.md#run-it-for-a-team) [b](other.md#why-obstore-1) [c](#top) [d](https://x.org/#no) "
        '`[e](no.md)`\n[f](gone.md) [g](other.md#over-http) [h](#nowhere) <img src="shots/none.png">\n'
        "```\n# not-a-heading\n```\n[i](#not-a-heading)\n",
        encoding="utf-8",
    )
    found = [link.split(": ", 1)[1] for link in broken_links(page, tmp_path)]
    assert found == ["gone.md", "other.md#over-http", "#nowhere", "shots/none.png", "#not-a-heading"]


def test_the_readme_is_a_first_screen_of_at_most_300_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300
