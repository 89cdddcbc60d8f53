"""`python -m shared.purge [--dry-run]`, the documented command; the purge is shared/lifecycle/purge.py."""

import sys

if __name__ == "__main__":
    from shared.lifecycle.purge import main

    raise SystemExit(main(sys.argv[1:]))
