"""dbt's static docs beside the dashboard are written again only when the code changed:
the file carries the code fingerprint it was generated from."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.steps import dbt_docs
from flows.steps.dbt_docs import DOCS_NAME, docs_fingerprint, write_dbt_docs


class FakeProject:
    """Stands in for DbtProject: counts the generations, each a new page."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.generated = 0

    def generate_static_docs(self) -> Path:
        self.generated += 1
        page = self.folder / "static_index.html"
        page.write_text(f"<html>docs {self.generated}</html>")
        return page


@pytest.fixture
def fingerprint(monkeypatch):
    code = {"fingerprint": "a" * 64}
    monkeypatch.setattr(dbt_docs, "code_fingerprint", lambda: code["fingerprint"])
    return code


def test_the_docs_are_generated_once_per_code(tmp_path, fingerprint):
    project = FakeProject(tmp_path)
    output = tmp_path / "output"
    output.mkdir()
    path = write_dbt_docs.fn(project, output)
    assert path == output / DOCS_NAME
    assert path.read_text().startswith("<html>docs 1</html>")
    assert docs_fingerprint(path) == "a" * 64

    write_dbt_docs.fn(project, output)  # same code: the file is kept
    assert project.generated == 1

    fingerprint["fingerprint"] = "b" * 64  # code changed: generated again
    write_dbt_docs.fn(project, output)
    assert project.generated == 2
    assert path.read_text().startswith("<html>docs 2</html>")
    assert docs_fingerprint(path) == "b" * 64


def test_a_file_without_a_fingerprint_is_generated_again(tmp_path, fingerprint):
    output = tmp_path / "output"
    output.mkdir()
    (output / DOCS_NAME).write_text("<html>docs from elsewhere</html>")
    assert docs_fingerprint(output / DOCS_NAME) is None
    project = FakeProject(tmp_path)
    write_dbt_docs.fn(project, output)
    assert project.generated == 1
