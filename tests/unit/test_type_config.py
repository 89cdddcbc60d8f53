"""The type check of `make lint` ([tool.mypy] in pyproject.toml) stays strict and has no escape hatch.

The check itself runs mypy (tests/integration/test_types.py); this reads the configuration and the source.
"""

from __future__ import annotations

import io
import re
import tokenize
import tomllib
from pathlib import Path

from tests.factories import ROOT

CHECKED = ("shared", "functions", "devhost", "function_app.py")
REQUIRED_FLAGS = (
    "strict",
    "disallow_untyped_defs",
    "check_untyped_defs",
    "no_implicit_optional",
    "warn_unused_ignores",
    "warn_redundant_casts",
)
# What a per-module override may say: that a library without types is imported, nothing about our code.
ALLOWED_OVERRIDE_KEYS = {"module", "ignore_missing_imports"}
# `# type: ignore[code, code]`, then at least two spaces and a `#` comment that says why.
IGNORE_WITH_REASON = re.compile(r"#\s*type:\s*ignore\[[a-z-]+(?:,\s*[a-z-]+)*\]\s+#\s*\S.*")
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore")


def _mypy_config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return dict(tomllib.load(file)["tool"]["mypy"])


def _checked_files() -> list[Path]:
    found: list[Path] = []
    for name in CHECKED:
        path = ROOT / name
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def _comments(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [(token.start[0], token.string) for token in tokens if token.type == tokenize.COMMENT]


def test_mypy_checks_the_code_strictly_with_pydantic_s_plugin():
    config = _mypy_config()
    assert config["python_version"] == "3.11"
    assert set(CHECKED) <= set(config["files"])
    assert "pydantic.mypy" in config["plugins"]
    assert all(config.get(flag) is True for flag in REQUIRED_FLAGS), [f for f in REQUIRED_FLAGS if not config.get(f)]
    assert "ignore-without-code" in config["enable_error_code"]


def test_no_blanket_escape_from_the_type_check():
    config = _mypy_config()
    overrides = config.get("overrides", [])
    assert isinstance(overrides, list)
    assert "ignore_errors" not in config and config.get("ignore_missing_imports") is not True
    assert "exclude" not in config
    for override in overrides:
        assert set(override) <= ALLOWED_OVERRIDE_KEYS, override
        modules = [override["module"]] if isinstance(override["module"], str) else override["module"]
        assert not any(module.split(".")[0] in {"shared", "functions", "devhost"} for module in modules), override


def test_make_lint_runs_the_type_check():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "-m mypy" in lint
    requirements = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").split()
    assert any(line.startswith("mypy==") for line in requirements)


def test_every_type_ignore_names_its_code_and_says_why():
    unexplained = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _checked_files()
        for line, comment in _comments(path)
        if TYPE_IGNORE.search(comment) and not IGNORE_WITH_REASON.search(comment)
    ]
    assert unexplained == []


def test_the_ignore_pattern_tells_a_reason_from_none():
    assert IGNORE_WITH_REASON.search("# type: ignore[misc]  # azure.core's lazy export is Any to mypy")
    assert IGNORE_WITH_REASON.search("# type: ignore[arg-type, override]  # why")
    assert not IGNORE_WITH_REASON.search("# type: ignore[misc]")
    assert not IGNORE_WITH_REASON.search("# type: ignore  # no code")
    assert not IGNORE_WITH_REASON.search("# type: ignore[misc] #")
