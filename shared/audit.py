"""`python -m shared.audit verify TENANT`, the documented command (shared/cli.py); the log: storage/audit.py."""

import sys

if __name__ == "__main__":
    from shared.cli import run

    raise SystemExit(run("audit", sys.argv[1:]))
