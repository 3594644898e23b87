"""The repository stands on its own: no file cites a document that is not in it, and every relative link of the README,
docs/ and the index pages leads to a file that is; the README gets to the point and leaves the rest to docs/."""
import re
from pathlib import Path

import pytest

from apr_lib.study.config import REPO_ROOT

SKIPPED_FOLDERS = {".git", "outputs", "data", "runs", ".snakemake", "__pycache__", ".pytest_cache", ".hypothesis",
                   "build", "dist", ".ipynb_checkpoints"}
# Citations of notes that live outside the repository: numbered sections of a facts file, the design notes, the
# shared reference folder. Cite the paper, the released code's file, or a page under docs/ instead.
OUTSIDE = re.compile(r"\bfacts (?:\d|section|file)|DESIGN\.md|official_code_facts|\bshared/(?:reference|paper)/")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def text_files() -> list[Path]:
    files = []
    for path in sorted(REPO_ROOT.rglob("*")):
        relative = path.relative_to(REPO_ROOT)
        if not path.is_file() or SKIPPED_FOLDERS & set(relative.parts[:-1]) or relative.suffix in {".png", ".pdf"}:
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def test_no_file_cites_a_document_outside_the_repository():
    cited = {}
    for path in text_files():
        if path == Path(__file__).resolve():
            continue
        hits = [f"{n}: {line.strip()[:100]}" for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                if OUTSIDE.search(line)]
        if hits:
            cited[path.relative_to(REPO_ROOT).as_posix()] = hits
    assert cited == {}


def link_pages() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")),
            *sorted((REPO_ROOT / "outputs").glob("*/index.md"))]


@pytest.mark.parametrize("page", link_pages(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(page):
    """Links to web pages and to anchors are not followed; a link into outputs/<profile>/ is checked where that run's
    outputs are in the tree."""
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        run_outputs = path.relative_to(REPO_ROOT).parts[:2] if path.is_relative_to(REPO_ROOT) else ()
        if run_outputs[:1] == ("outputs",) and not (REPO_ROOT / Path(*run_outputs)).is_dir():
            continue
        if not path.exists():
            broken.append(target)
    assert broken == []


def test_the_license_and_the_citation_are_there():
    assert (REPO_ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    citation = (REPO_ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert "preferred-citation:" in citation and "2108.08487" in citation
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "@inproceedings{chen2021amplitude" in readme and "https://github.com/iCGY96/APR" in readme


def test_the_readme_gets_to_the_point_and_links_every_page_of_docs():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) < 8 * 1024
    headings = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert headings[:3] == ["Quickstart", "Results", "Explore"] and "Use APR in your own training" in headings
    quickstart = re.search(r"^## Quickstart\n(.*?)(?=^## )", readme, re.S | re.M).group(1)
    commands = re.search(r"```bash\n(.*?)```", quickstart, re.S).group(1).splitlines()  # what .ci/newcomer runs
    assert "snakemake --cores 4 all" in commands[0] and commands[1] == "pytest"
    assert re.search(r"\d+(-\d+)? minutes on 2 cores", quickstart) and "GB" in quickstart  # time, disk and memory
    linked = set(LINK.findall(readme))
    assert {f"docs/{page.name}" for page in (REPO_ROOT / "docs").glob("*.md")} <= linked
