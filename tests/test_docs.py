"""The README and the documents in docs/ stay true where a test can tell.

The documents are README.md and every docs/*.md. The rules:

1. Exit codes. docs/operating.md holds the one exit-code table, whose header starts with
   `| exit code | constant |` and whose rows are `| N | `EXIT_NAME` | meaning |`: each
   row's code is flows/errors.py's constant of that name, and every EXIT_* constant has a
   row. Everywhere else, each "exit N", "exits N", "exit code N" or "exit codes N, M and
   K" names a code of that table; and in a clause (text between `,` `;` `:` or `.` and
   the next) that names exactly one code, a phrase that belongs to one meaning (MEANINGS:
   "gives up", "internal error", "bad input", ...) requires that meaning's code.
2. Paths. An inline code span (outside fenced blocks) without spaces whose first path
   component is a top-level entry of the repository (a file or folder git lists) names a
   repository path, which must exist (`*` globs); the few paths a run creates inside
   tracked folders are exempt (RUN_TIME_PATHS). Paths under folders the repository does
   not hold (output/, .prefect/, .bench/) are what a run writes and are not checked. A
   markdown link that is not a URL is resolved from its document's folder and must exist,
   and its #anchor must be a heading of the target.
3. Nothing points outside the repository: no link is absolute or climbs with `../`, no
   document contains `../` or the checkout's own absolute path, and no tracked file names
   the product spec's old home outside the repository.
4. Every `make <target>` in code (inline or fenced) is a target of the Makefile.
5. README.md is at most 250 lines.
6. docs/testing.md names every test file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import project_files

from flows import errors
from flows.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, *DOCS]
EXIT_TABLE_DOC = PROJECT_ROOT / "docs" / "operating.md"
README_MAX_LINES = 250

# Inside tracked folders, but made by a run: the warehouse files and the daily input folder.
RUN_TIME_PATHS = (
    "data/incoming",
    "data/warehouse.duckdb",
    "data/demo-warehouse.duckdb",
    "dbt_project/target",
    "dbt_project/logs",
)
# Phrases that name one exit code's meaning, by its constant in flows/errors.py.
MEANINGS = {
    "EXIT_BLOCKED": ("blocking check", "blocked"),
    "EXIT_BAD_INPUT": ("bad input",),
    "EXIT_EXPORT_FAILED": ("export failed", "export beyond"),
    "EXIT_INTERNAL_ERROR": ("internal error",),
    "EXIT_WAREHOUSE_BUSY": ("gives up", "gave up", "give up", "lock timeout"),
    "EXIT_TIMED_OUT": ("timed out", "time limit"),
}
# Written in two parts so that this file does not name it either.
SPEC_OUTSIDE = ("shared" + "/spec", "../" + "shared")

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)
EXIT_MENTION = re.compile(
    r"\bexit(?:s|ed)?(?:\s+(?:code|codes|status))?(?:\s+(?:with|of|is))?"
    r"\s+(\d+(?:\s*(?:,\s*and|,|and|or)\s*\d+)*)\b",
    re.IGNORECASE,
)
CLAUSE_END = re.compile(r"[,;:]\s|\.\s")
MAKE_COMMAND = re.compile(r"(?:^|[\s;&|(])make\s+([A-Za-z][\w-]*)", re.MULTILINE)


def rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def without_fences(text: str) -> str:
    return FENCE.sub("", text)


def exit_codes_named(text: str) -> list[int]:
    return [
        int(code)
        for match in EXIT_MENTION.finditer(text)
        for code in re.findall(r"\d+", match.group(1))
    ]


def passages(text: str) -> list[str]:
    """Paragraphs, each on one line, and each table row on its own."""
    found, paragraph = [], []
    for line in [*text.splitlines(), ""]:
        if line.strip() and not line.startswith("|"):
            paragraph.append(line.strip())
            continue
        if paragraph:
            found.append(" ".join(paragraph))
            paragraph = []
        if line.startswith("|"):
            found.append(line)
    return found


def exit_code_table(text: str) -> dict[str, int]:
    """The rows of the documents' exit-code table: constant name -> code."""
    rows: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:2] == ["exit code", "constant"]:
            in_table = True
        elif in_table and line.startswith("|"):
            if set(cells[0]) <= set("-: "):
                continue
            rows[cells[1].strip("`")] = int(cells[0])
        else:
            in_table = False
    return rows


def exit_constants() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(errors).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }


def tracked_files() -> list[str]:
    return project_files()


def top_level_entries() -> set[str]:
    return {path.split("/", 1)[0] for path in tracked_files()}


def repository_paths(text: str, top_level: set[str]) -> list[str]:
    """The code spans of a document that name a path in the repository."""
    paths = []
    for span in CODE_SPAN.findall(without_fences(text)):
        span = span.strip()
        if re.search(r"\s", span) or span.split("/", 1)[0] not in top_level:
            continue
        if any(span == p or span.startswith(p + "/") for p in RUN_TIME_PATHS):
            continue
        paths.append(span)
    return paths


def path_exists(path: str) -> bool:
    if "*" in path:
        return any(PROJECT_ROOT.glob(path))
    return (PROJECT_ROOT / path).exists()


def anchors(document: Path) -> set[str]:
    """GitHub's anchors for a document's headings."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(without_fences(document.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def makefile_targets() -> set[str]:
    targets = set()
    for line in (PROJECT_ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z][\w\- ]*?)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


@pytest.fixture(scope="module")
def documents() -> dict[str, str]:
    return {rel(path): path.read_text() for path in DOCUMENTS}


def test_the_documents_exist():
    expected = {"contract", "operating", "data-quality", "architecture", "performance", "testing"}
    assert {path.stem for path in DOCS} >= expected


def test_the_exit_code_table_is_flows_errors():
    table = exit_code_table(EXIT_TABLE_DOC.read_text())
    constants = exit_constants()
    assert table == constants, (
        f"{rel(EXIT_TABLE_DOC)}'s exit-code table differs from flows/errors.py"
    )


def test_there_is_one_exit_code_table(documents):
    holding = [name for name, text in documents.items() if exit_code_table(text)]
    assert holding == [rel(EXIT_TABLE_DOC)]


def test_every_exit_code_named_is_one_of_the_table(documents):
    known = set(exit_constants().values())
    wrong = {
        name: sorted(set(exit_codes_named(text)) - known)
        for name, text in documents.items()
        if set(exit_codes_named(text)) - known
    }
    assert wrong == {}, "exit codes that flows/errors.py does not have"


def test_each_exit_code_is_named_with_its_own_meaning(documents):
    constants = exit_constants()
    wrong = []
    for name, text in documents.items():
        clauses = [c for passage in passages(text) for c in CLAUSE_END.split(passage)]
        for clause in clauses:
            codes = set(exit_codes_named(clause))
            if len(codes) != 1:
                continue
            lowered = clause.lower()
            meant = {
                constants[constant]
                for constant, phrases in MEANINGS.items()
                if any(phrase in lowered for phrase in phrases)
            }
            if len(meant) == 1 and meant != codes:
                wrong.append(f"{name}: {clause.strip()!r} should name exit {meant.pop()}")
    assert wrong == []


def test_every_repository_path_named_exists(documents):
    top_level = top_level_entries()
    missing = [
        f"{name}: `{path}`"
        for name, text in documents.items()
        for path in repository_paths(text, top_level)
        if not path_exists(path)
    ]
    assert missing == []


def test_every_link_resolves_inside_the_repository(documents):
    broken = []
    for name, text in documents.items():
        folder = (PROJECT_ROOT / name).parent
        for target in LINK.findall(without_fences(text)):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            if target.startswith("/") or "../" in target:
                broken.append(f"{name}: ({target}) points outside its folder's tree")
                continue
            path, _, anchor = target.partition("#")
            document = (folder / path).resolve() if path else PROJECT_ROOT / name
            if not document.exists() or PROJECT_ROOT not in document.parents:
                broken.append(f"{name}: ({target}) does not exist in the repository")
            elif anchor and document.suffix == ".md" and anchor not in anchors(document):
                broken.append(f"{name}: ({target}) names no heading of {rel(document)}")
    assert broken == []


def test_nothing_points_outside_the_repository(documents):
    # The checkout's own path would be a marker too, but where a clone lives is anyone's
    # choice (a clone in /tmp/ must not fail on an example path under /tmp/).
    markers = ["../", *SPEC_OUTSIDE, str(PROJECT_ROOT)]
    found = [
        f"{name}: {marker!r}"
        for name, text in documents.items()
        for marker in markers
        if marker in text
    ]
    for path in tracked_files():
        file = PROJECT_ROOT / path
        if not file.is_file():
            continue
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue  # binary
        found += [f"{path}: {marker!r}" for marker in SPEC_OUTSIDE if marker in text]
    assert found == []


def test_every_make_target_named_exists(documents):
    targets = makefile_targets()
    unknown = []
    for name, text in documents.items():
        code = FENCE.findall(text) + CODE_SPAN.findall(without_fences(text))
        unknown += [
            f"{name}: make {target}"
            for block in code
            for target in MAKE_COMMAND.findall(block)
            if target not in targets
        ]
    assert unknown == []


def test_the_readme_is_a_front_door():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines"


# --- the checks themselves catch what they are for ------------------------------------------


def test_the_checks_catch_planted_mistakes():
    table = "| exit code | constant | meaning |\n|---|---|---|\n| 2 | `EXIT_WAREHOUSE_BUSY` | x |\n"
    assert exit_code_table(table) == {"EXIT_WAREHOUSE_BUSY": 2}
    assert exit_codes_named("it exits 3, or exit codes 0, 1 and 7") == [3, 0, 1, 7]
    assert repository_paths("see `flows/nowhere.py` and `output/x.csv`", {"flows"}) == [
        "flows/nowhere.py"
    ]
    assert not path_exists("flows/nowhere.py")
    assert "write-audit-publish-of-the-warehouse" in anchors(PROJECT_ROOT / "docs/architecture.md")
    assert {"run", "test", "deploy", "bench"} <= makefile_targets()


def test_every_test_file_is_described():
    described = (PROJECT_ROOT / "docs" / "testing.md").read_text()
    files = sorted(rel(path) for path in (PROJECT_ROOT / "tests").glob("test_*.py"))
    assert [f for f in files if f"`{f}`" not in described] == []
