"""Compile PackCloud's own modules into the deployment package: `python3.11 infra/bytecode.py PACKAGE.zip`.

The Function App runs from its package, read-only, so Python cannot cache the bytecode of PackCloud's modules and
compiles them again on every cold start (about half of the app's own import time: bench/README.md). The
dependencies need nothing: the remote build's pip compiles them. `unchecked-hash`, because a zip keeps no
modification times to check a .pyc against, and these .pyc are compiled from the very sources packed beside them.
The Python that runs this must be the runtime's (3.11, infra/modules/function-app.bicep): another version's .pyc
would be ignored. `--dir DIR` compiles an unpacked copy in place instead (bench/cold_start.py).
"""

from __future__ import annotations

import compileall
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path

OWN = ("shared/", "functions/", "function_app.py")


def compile_tree(root: Path) -> list[Path]:
    """Compile the app's own modules under `root`; the .pyc files written."""
    sources = [path for path in root.rglob("*.py") if path.relative_to(root).as_posix().startswith(OWN)]
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    for source in sources:
        if not compileall.compile_file(source, quiet=2, invalidation_mode=mode):
            raise SystemExit(f"bytecode: {source.relative_to(root)} does not compile")
    return sorted(root.rglob("__pycache__/*.pyc"))


def add_to_package(package: Path) -> int:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        with zipfile.ZipFile(package) as archive:
            archive.extractall(root, [name for name in archive.namelist() if name.startswith(OWN)])
        compiled = compile_tree(root)
        with zipfile.ZipFile(package, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for pyc in compiled:
                archive.write(pyc, pyc.relative_to(root).as_posix())
    return len(compiled)


def main(arguments: list[str]) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if len(arguments) == 2 and arguments[0] == "--dir":
        count = len(compile_tree(Path(arguments[1])))
    elif len(arguments) == 1:
        count = add_to_package(Path(arguments[0]))
    else:
        raise SystemExit("usage: python3.11 infra/bytecode.py PACKAGE.zip | --dir DIR")
    print(f"bytecode: {count} modules compiled for Python {version}")


if __name__ == "__main__":
    main(sys.argv[1:])
