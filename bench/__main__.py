"""`make bench`: every benchmark of the suite, each against its own baseline measured in the same run."""

from bench import pixel


def main() -> None:
    pixel.main()


if __name__ == "__main__":
    main()
