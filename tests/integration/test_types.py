"""The type check of `make lint`: mypy, as pyproject.toml configures it, passes on the code and fails on the
defects it is there for (a wrong type, an unannotated def, an ignore without its code, an ignore that no longer
silences anything). Integration tier: it runs a process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.factories import ROOT

CHECKED_DIRS = ("shared", "functions", "devhost")


def mypy(root: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """`make lint`'s type check on the tree at `root`, with its own cache so runs never share state."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--config-file", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in CHECKED_DIRS:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("function_app.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tree / name)
    return tree


def append(module: Path, text: str) -> None:
    module.write_text(module.read_text(encoding="utf-8") + f"\n\n{text}\n", encoding="utf-8")


def test_the_code_type_checks(tmp_path):
    result = mypy(ROOT, tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_check_fails_on_what_it_is_there_for(tmp_path):
    tree = copy_tree(tmp_path)
    append(tree / "shared" / "core" / "ids.py", 'def wrong_type() -> int:\n    return "7"')
    append(tree / "functions" / "_http.py", "def unannotated(value):\n    return value")
    append(tree / "devhost" / "routes.py", 'BARE: int = "1"  # type: ignore')
    append(tree / "shared" / "core" / "clock.py", "NEEDLESS: int = 1  # type: ignore[assignment]  # not needed")
    result = mypy(tree, tmp_path / "cache")
    assert result.returncode == 1
    out = result.stdout
    assert "shared/core/ids.py" in out and "[return-value]" in out
    assert "functions/_http.py" in out and "[no-untyped-def]" in out
    assert "devhost/routes.py" in out and "[ignore-without-code]" in out
    assert "shared/core/clock.py" in out and "[unused-ignore]" in out
