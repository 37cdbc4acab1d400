"""The folder tree of docs/architecture.md is the code's: every folder it names exists,
every folder of the project is named, and each Python module of flows/ is named under its
folder.
Also: nothing in flows/ imports from a folder above it (plumbing never reaches up)."""

from __future__ import annotations

import ast
import re

from conftest import project_files

from flows.config import PROJECT_ROOT

ARCHITECTURE = PROJECT_ROOT / "docs" / "architecture.md"
# Folders that hold no code of the project: generated, cached or third-party.
NOT_PROJECT_FOLDERS = {"__pycache__", "target", "logs"}
# Which of flows/' folders each may import from (its own package and those below it).
MAY_IMPORT = {
    "flows.runtime": {"flows.runtime", "flows.config", "flows.errors"},
    "flows.external": {"flows.external", "flows.runtime", "flows.config", "flows.contract",
                       "flows.errors", "flows.quality"},
    "flows.quality": {"flows.quality", "flows.runtime", "flows.config", "flows.contract",
                      "flows.errors"},
    "flows.steps": {"flows.steps", "flows.quality", "flows.runtime", "flows.config",
                    "flows.contract", "flows.errors"},
}  # fmt: skip


def documented_tree() -> dict[str, str]:
    """Each folder of the Code layout block and the text describing it."""
    section = ARCHITECTURE.read_text().split("## Code layout", 1)[1]
    block = section.split("```", 2)[1]
    tree: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        match = re.match(r"^(\S+/)\s+(.*)$", line)
        if match:
            current = match.group(1).rstrip("/")
            tree[current] = match.group(2)
        elif current and line.strip():
            tree[current] += " " + line.strip()
    return tree


def project_folders() -> tuple[set[str], set[str]]:
    """(every folder of the project's files, the folders that hold a file themselves)."""
    files = project_files()
    folders, holding_files = set(), set()
    for path in files:
        parts = path.split("/")[:-1]
        if any(part.startswith(".") or part in NOT_PROJECT_FOLDERS for part in parts):
            continue
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
        if parts:
            holding_files.add("/".join(parts))
    return folders, holding_files


def test_the_documented_tree_names_every_folder_and_only_those():
    tree = documented_tree()
    folders, holding_files = project_folders()
    assert set(tree) - folders == set(), "named in the tree but not on disk"
    # A folder that only holds folders (dbt_project/models, data) needs no line of its own.
    assert holding_files - set(tree) == set(), "on disk but not in the tree"


def test_each_module_of_flows_is_named_under_its_folder():
    tree = documented_tree()
    for folder in [name for name in tree if name.startswith("flows")]:
        modules = {
            path.stem for path in (PROJECT_ROOT / folder).glob("*.py") if path.stem != "__init__"
        }
        described = tree[folder]
        missing = {m for m in modules if not re.search(rf"\b{m}(\.py)?\b", described)}
        assert missing == set(), f"{folder}: modules not named in the tree: {missing}"


def test_nothing_in_flows_imports_from_a_folder_above_it():
    for package, allowed in MAY_IMPORT.items():
        folder = PROJECT_ROOT / package.replace(".", "/")
        for path in folder.glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                    "flows"
                ):
                    continue
                targets = (
                    [f"flows.{alias.name}" for alias in node.names]
                    if node.module == "flows"
                    else [node.module]
                )
                for target in targets:
                    assert any(target == a or target.startswith(a + ".") for a in allowed), (
                        f"{path.relative_to(PROJECT_ROOT)} imports {target}"
                    )
