"""The repository explains itself: facts are cited to pages inside it or to the vendors' own documentation.

Fails on a section-sign reference, a mention of the protocol notes the adapters were first written from, or
a path that climbs out of the repository into a sibling folder; and on a `docs/providers/<page>.md#anchor`
citation whose page or heading does not exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Built from pieces so this file does not match itself.
FORBIDDEN = {
    "a section-sign reference": "\u00a7",
    "the external protocol notes": "provider-" + "protocols",
    "a path outside the repository": "../" + "shared",
    "an absolute path to the design notes": "/work/" + "shared",
}
CITATION = re.compile(r"docs/providers/([a-z0-9_-]+)\.md(?:#([a-z0-9-]+))?")
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", "build", "data"}


def tracked_files() -> list[Path]:
    """The files git tracks; outside a git checkout, every file below the root but build artefacts."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        return [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]


def text_of(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # binary (screenshots) or gone


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


def test_the_file_list_is_real() -> None:
    files = tracked_files()
    assert ROOT / "pyproject.toml" in files and ROOT / "reelgate" / "providers" / "base.py" in files


def test_no_citation_points_outside_the_repository() -> None:
    problems = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, needle in FORBIDDEN.items():
                if needle in line:
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:100]}")
    assert not problems, "\n".join(problems)


def test_every_provider_page_citation_resolves() -> None:
    pages = ROOT / "docs" / "providers"
    problems = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for match in CITATION.finditer(text):
            page = pages / f"{match.group(1)}.md"
            if not page.is_file():
                problems.append(f"{path.relative_to(ROOT)}: no page {match.group(0)}")
            elif match.group(2) and match.group(2) not in anchors(page):
                problems.append(f"{path.relative_to(ROOT)}: no heading for {match.group(0)}")
    assert not problems, "\n".join(problems)


def test_every_provider_page_links_its_vendors_documentation() -> None:
    pages = sorted((ROOT / "docs" / "providers").glob("*.md"))
    assert len(pages) >= 12
    for page in pages:
        assert re.search(r"\]\(https://[^)]+\)", page.read_text(encoding="utf-8")), f"{page.name} links no vendor page"
