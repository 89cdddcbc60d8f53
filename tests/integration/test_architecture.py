"""The layers of shared/ (pyproject.toml, [tool.importlinter]): imports point down only, and no cycle.

Unit tests: they read source files, never storage, a host or a browser.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

from tests.factories import ROOT, UNREACHABLE_STORAGE, settings_values

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """The contract check of `make lint`, on the tree at `root` (its own shared/ and functions/ only)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_tree(tmp_path: Path) -> Path:
    for name in ("shared", "functions"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text(encoding="utf-8") + f"\n{statement}\n", encoding="utf-8")


def test_the_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in " ".join(result.stdout.split())


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The cycle the layers removed (audit -> services) and a region rule asking for the services again."""
    tree = copy_tree(tmp_path)
    add_import(tree / "shared" / "storage" / "audit.py", "from shared.services import get_services  # noqa")
    add_import(tree / "shared" / "registry" / "access.py", "from shared.services import Services  # noqa")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "shared.storage.audit -> shared.services" in result.stdout
    assert "shared.registry.access -> shared.services" in result.stdout
    assert "BROKEN" in result.stdout


def test_a_lazy_import_inside_a_function_breaks_it_too(tmp_path):
    """The old cycle hid in a `main()`: an import inside a function counts like one at the top."""
    tree = copy_tree(tmp_path)
    add_import(tree / "shared" / "lifecycle" / "purge.py", "def main():\n    from shared.cli import purge  # noqa")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "shared.lifecycle.purge -> shared.cli" in result.stdout


def test_capabilities_do_not_import_each_other(tmp_path):
    tree = copy_tree(tmp_path)
    add_import(tree / "shared" / "pixel" / "hits.py", "from shared.webform.intake import FormIntake  # noqa")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "shared.pixel.hits -> shared.webform.intake" in result.stdout


def test_a_subpackage_outside_the_layers_breaks_it(tmp_path):
    """Every subpackage of shared/ must be given its layer (exhaustive), so a new one cannot slip past."""
    tree = copy_tree(tmp_path)
    (tree / "shared" / "webhooks").mkdir()
    (tree / "shared" / "webhooks" / "__init__.py").write_text('"""Provider webhooks."""\n', encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "shared.webhooks" in result.stdout


def test_shared_never_imports_the_http_functions(tmp_path):
    tree = copy_tree(tmp_path)
    add_import(tree / "shared" / "capture" / "store.py", "from functions._http import json_response  # noqa")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "shared.capture.store -> functions._http" in result.stdout


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def shared_graph(root: Path) -> tuple[grimp.ImportGraph, set[str]]:
    sys.path.insert(0, str(root))
    try:
        graph = grimp.build_graph("shared", cache_dir=None)
    finally:
        sys.path.remove(str(root))
    return graph, {module for module in graph.modules if module.startswith("shared")}


def test_no_module_of_shared_imports_itself_through_others():
    """Within a layer too (which the layers contract allows): no cycle at all, of any length."""
    graph, modules = shared_graph(ROOT)
    assert cycles(graph, modules) == []


def test_the_cycle_check_finds_a_cycle_inside_one_layer():
    graph, modules = shared_graph(ROOT)
    graph.add_import(importer="shared.registry.models", imported="shared.registry.store")
    assert {"shared.registry.models", "shared.registry.store"} in cycles(graph, modules)


def test_shared_never_imports_azure_functions():
    """The rules never depend on the Functions host (import-linter can only forbid top-level external names)."""
    offenders = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(name == "azure.functions" or name.startswith("azure.functions.") for name in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# What importing function_app may load of the capability layer and dataverse: the pixel's engine (the first
# request's), and the two constant-only modules of the notice and link routes (README, "Cold start").
LOADED_AT_IMPORT = {"shared.pixel", "shared.links.pages", "shared.notice.languages"}
CAPABILITY_PACKAGES = ("shared.dataverse", "shared.registration", "shared.geologin", "shared.webform")
# Client libraries that only routes other than the first request's use, and the bot list, which only `make
# bot-pattern` reads (the app loads the data written from it: shared/capture/bot_pattern.py).
OTHER_ROUTES_LIBRARIES = ("twilio", "sendgrid", "httpx", "msal", "azure.identity", "azure.keyvault")
BUILD_TIME_ONLY = ("crawleruseragents", "shared.capture.bot_list")
PROBE = """
import json, sys
import function_app
names = [f.get_function_name() for f in function_app.app.get_functions()]
from shared.registry import models
from shared.registry import store
built = {name: getattr(models, name).__pydantic_complete__
         for name in ("Dataset", "TenantIn", "KeyRotation", "DatasetDoc")}
built["_Registered"] = store._Registered.__pydantic_complete__
print(json.dumps({"functions": names, "modules": sorted(sys.modules), "built": built}))
"""


def capability_packages() -> tuple[str, ...]:
    layers = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split('"pixel | ', 1)[1].split('"', 1)[0]
    return CAPABILITY_PACKAGES + tuple(f"shared.{name.strip()}" for name in ("pixel | " + layers).split("|"))


def test_importing_the_app_registers_every_function_and_loads_no_other_routes_code():
    """Import on first use: the host indexes every function, yet only the first request's code is loaded."""
    env = {**os.environ, **settings_values(UNREACHABLE_STORAGE), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"pixel", "sms_send", "email_events", "mailchimp_webhook", "manage_attachments", "links_go"} <= set(
        loaded["functions"]
    )
    assert {"notice", "manage_dpo_webhook", "privacy_report", "dpo_notifications", "attachment_mover"} <= set(
        loaded["functions"]
    )
    packages = capability_packages()
    own = [
        name
        for name in loaded["modules"]
        if name.startswith(tuple(f"{package}." for package in packages))
        and not name.startswith(tuple(f"{allowed}." for allowed in LOADED_AT_IMPORT))
        and name not in LOADED_AT_IMPORT
    ]
    assert own == []
    libraries = [
        name
        for name in loaded["modules"]
        if name in OTHER_ROUTES_LIBRARIES or name.startswith(tuple(f"{library}." for library in OTHER_ROUTES_LIBRARIES))
    ]
    assert libraries == []
    assert [name for name in BUILD_TIME_ONLY if name in loaded["modules"]] == []
    assert "shared.storage.emulated_tags" not in loaded["modules"]  # Azurite's tag queries, loaded when one runs
    # pydantic builds the models only the management routes (or an unknown tenant) need on first use; a capture's,
    # at import.
    assert loaded["built"] == {
        "Dataset": False,
        "TenantIn": False,
        "KeyRotation": False,
        "_Registered": False,
        "DatasetDoc": True,
    }
    assert "shared.capture.bot_pattern" in loaded["modules"]  # the probe saw the app's capture code load
    assert "shared.sms" in packages and "shared.mailchimp" in packages  # the layer line was read
