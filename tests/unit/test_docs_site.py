"""The documentation site (mkdocs.yml) builds with --strict, offline, and documents the API."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import amlretrain
from tests.conftest import REPO

pytestmark = pytest.mark.slow

REFERENCE = REPO / "docs" / "reference"
# A module-level `::: amlretrain.x` directive of a reference page (not `::: amlretrain.x.Name`).
DIRECTIVE = re.compile(r"^::: (amlretrain(?:\.[a-z]\w*)*)\s*$", re.M)


def documented_modules() -> dict[str, str]:
    """Each module rendered by a reference page, mapped to that page's stem."""
    modules: dict[str, str] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for module in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            modules[module] = page.stem
    return modules


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module exactly as `make docs` builds it."""
    pytest.importorskip(
        "mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'"
    )
    pytest.importorskip("material", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file"]
    command += [str(REPO / "mkdocs.yml"), "--site-dir", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


def page(site: Path, stem: str) -> str:
    return (site / "reference" / stem / "index.html").read_text(encoding="utf-8")


def test_site_builds_with_the_guides_and_the_reference(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "definitions" / "index.html").is_file()
    assert documented_modules(), "no `::: amlretrain...` directive under docs/reference/"


def test_every_public_name_of_a_documented_module_is_rendered(site: Path) -> None:
    missing = []
    for module, stem in documented_modules().items():
        if module == "amlretrain":
            continue
        html = page(site, stem)
        for name in importlib.import_module(module).__all__:
            if f'id="{module}.{name}"' not in html:
                missing.append(f"{module}.{name} (docs/reference/{stem}.md)")
    assert missing == []


def test_the_package_page_lists_every_name_of_all(site: Path) -> None:
    html = page(site, "amlretrain")
    missing = [name for name in amlretrain.__all__ if f"<code>{name}</code>" not in html]
    assert missing == [], f"add them to the table of docs/reference/amlretrain.md: {missing}"


def test_the_definition_page_documents_the_rewriter(site: Path) -> None:
    html = page(site, "studio.definition")
    assert 'id="amlretrain.studio.definition.WebServiceDefinition.with_trained_model"' in html
    assert 'id="amlretrain.studio.definition.WebServiceDefinition.diff"' in html


def test_example_sections_render_as_code_and_sphinx_roles_do_not_show(site: Path) -> None:
    # docs/_griffe_docstrings.py: "Example:" is read as Google "Examples:" (a doctest block).
    html = page(site, "studio.definition")
    doctest = html[html.index('id="amlretrain.studio.definition.WebServiceDefinition"') :]
    assert (
        '<div class="highlight"><pre><span></span><code><span class="gp">&gt;&gt;&gt; </span>'
        in doctest
    )
    for stem in documented_modules().values():
        assert ":class:`" not in page(site, stem), stem
        assert ":meth:`" not in page(site, stem), stem


def test_no_page_loads_fonts_or_scripts_from_the_network(site: Path) -> None:
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in text, html
        assert "fonts.gstatic.com" not in text, html
