"""The documentation's sources stay complete, without building them (no Sphinx needed): every
public name is on the API reference page, and every example is a sphinx-gallery example that
the gallery executes."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api" / "index.rst"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _public_all():
    """(module, name) for each name in the ``__all__`` of every public module of skfm (a
    module or package none of whose path parts starts with "_"), read from the source, so a
    module with optional dependencies (e.g. dask) needs none of them here."""
    out = []
    for path in sorted((ROOT / "skfm").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign)
                    and any(getattr(t, "id", None) == "__all__" for t in node.targets)):
                out += [(".".join(parts), name) for name in ast.literal_eval(node.value)
                        if not name.startswith("__")]
    return out


PUBLIC = _public_all()


def test_public_names_found():
    modules = {module for module, _ in PUBLIC}
    assert {"skfm", "skfm.datasets"} <= modules
    assert ("skfm", "FMClassifier") in PUBLIC and ("skfm.datasets", "load_libfm") in PUBLIC


@pytest.mark.parametrize("module,name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_in_api_reference(module, name):
    """A name added to an ``__all__`` must be added to docs/api/index.rst too (under the
    ``currentmodule`` of its module), or it has no page."""
    text = API.read_text()
    assert re.search(rf"^\s+{re.escape(name)}\s*$|^\.\. \w+:: {re.escape(name)}\s*$", text,
                     flags=re.M), f"{module}.{name} is missing from {API.relative_to(ROOT)}"
    assert f".. currentmodule:: {module}\n" in text or f".. module:: {module}\n" in text


def _gallery_conf():
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "sphinx_gallery_conf" for t in node.targets)):
            return ast.literal_eval(node.value)
    raise AssertionError("docs/conf.py defines no sphinx_gallery_conf")


def test_gallery_runs_every_example():
    conf = _gallery_conf()
    assert EXAMPLES
    for path in EXAMPLES:
        assert re.search(conf["filename_pattern"], str(path)), path.name
        assert not re.search(conf["ignore_pattern"], path.name), path.name
    assert (ROOT / "examples" / "GALLERY_HEADER.rst").exists()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_has_gallery_title(path):
    """sphinx-gallery reads an example's title from its module docstring: a first line,
    underlined with "=" at least as long, then a paragraph."""
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=True)
    assert doc, f"{path.name} has no module docstring"
    lines = doc.strip().splitlines()
    assert len(lines) >= 4, f"{path.name}: title, underline, blank line and a paragraph"
    title, underline = lines[0].strip(), lines[1].strip()
    assert title and set(underline) == {"="} and len(underline) >= len(title), \
        f"{path.name}: the docstring must start with a title underlined with '='"
    assert not lines[2].strip() and lines[3].strip(), f"{path.name}: a paragraph after the title"
