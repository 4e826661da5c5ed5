"""The package rules of DESIGN.md, checked on the source.

Imports flow crm_wagtail -> crm_forms -> crm_payments -> crm_core only; crm_core
imports neither Wagtail nor stripe; only crm_payments/providers/stripe*.py
import stripe; only crm_core/sanitize.py imports bleach.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["crm_core", "crm_payments", "crm_forms", "crm_wagtail"]


def imported_modules(path, package, root=ROOT):
    """Absolute names of every module a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # The package a relative import starts from (for __init__.py, the package itself).
    parts = list(path.relative_to(root).with_suffix("").parts)[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.append(node.module)
    return names


def source_files():
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path


def top(name):
    return name.split(".")[0]


@pytest.mark.parametrize("package", LAYERS)
def test_apps_import_only_the_layers_below_them(package):
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for pkg, path in source_files()
        if pkg == package
        for name in imported_modules(path, package)
        if top(name) in LAYERS and top(name) not in allowed
    ]
    assert wrong == []


def test_crm_core_imports_neither_wagtail_nor_stripe():
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for pkg, path in source_files()
        if pkg == "crm_core"
        for name in imported_modules(path, pkg)
        if top(name) in {"wagtail", "stripe", "modelcluster", "taggit"}
    ]
    assert wrong == []


def test_only_the_stripe_provider_modules_import_stripe():
    importers = {
        str(path.relative_to(ROOT))
        for pkg, path in source_files()
        if any(top(name) == "stripe" for name in imported_modules(path, pkg))
    }
    assert importers  # the provider exists and is checked
    assert all(name.startswith("crm_payments/providers/stripe") for name in importers), importers


def test_only_sanitize_imports_bleach():
    importers = {
        str(path.relative_to(ROOT))
        for pkg, path in source_files()
        if any(top(name) == "bleach" for name in imported_modules(path, pkg))
    }
    assert importers == {"crm_core/sanitize.py"}


def test_the_checker_sees_relative_imports(tmp_path):
    # Guard the guard: a relative import of a higher layer must be caught.
    package = tmp_path / "crm_core" / "services"
    package.mkdir(parents=True)
    module = package / "bad.py"
    module.write_text("from ...crm_payments import models\nfrom ..models import Contact\n")
    names = imported_modules(module, "crm_core", root=tmp_path)
    assert names == ["crm_payments", "crm_core.models"]
