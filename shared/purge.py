"""`python -m shared.purge [--dry-run]`, the documented command (shared/cli.py); the purge: lifecycle/purge.py."""

import sys

if __name__ == "__main__":
    from shared.cli import run

    raise SystemExit(run("purge", sys.argv[1:]))
