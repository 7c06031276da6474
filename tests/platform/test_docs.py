"""The documented interface is the real one: CLI reference generated, every API path and setting listed."""

from __future__ import annotations

from release_requests.api import reference
from release_requests.api.app import create_app
from release_requests.cli.reference import render
from release_requests.config import load_config
from release_requests.settings import Settings
from tests.conftest import REPO


def test_cli_reference_is_current():
    regenerate = "python -m release_requests.cli.reference > docs/cli.md"
    assert (REPO / "docs" / "cli.md").read_text() == render(), f"run: {regenerate}"


def test_permission_table_and_routes_in_the_docs_are_current():
    documented = (REPO / "docs" / "api.md").read_text()
    app = reference.the_app()
    generated = reference.render(reference.declared_actions(app), reference.declared_actions(app, pages=True))
    assert reference.update_doc(documented, generated) == documented, f"run: {reference.COMMAND}"


def test_every_api_path_is_documented():
    spec = create_app(settings=Settings(), config=load_config(REPO / "config"), sessions=None).openapi()
    documented = (REPO / "docs" / "api.md").read_text()
    missing = [path for path in spec["paths"] if f"`{path}`" not in documented]
    assert not missing, f"docs/api.md lacks {missing}"


def test_every_setting_is_documented():
    documented = (REPO / "docs" / "configuration.md").read_text()
    missing = [f"RR_{name.upper()}" for name in Settings.model_fields if f"RR_{name.upper()}" not in documented]
    assert not missing, f"docs/configuration.md lacks {missing}"
