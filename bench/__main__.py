"""`make bench`: every benchmark of the suite, each against its own baseline measured in the same run."""

import sys

from bench import autonumber, geologin, pixel, purge, webform


def main() -> None:
    pixel.main()
    webform.main()
    autonumber.main()
    geologin.main()
    purge.main(sys.argv[1:])


if __name__ == "__main__":
    main()
