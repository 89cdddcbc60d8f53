"""`python -m shared.audit verify TENANT`, the documented command; the audit log is shared/storage/audit.py."""

import sys

if __name__ == "__main__":
    from shared.storage.audit import main

    raise SystemExit(main(sys.argv[1:]))
