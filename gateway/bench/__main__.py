"""`python -m gateway.bench`: the load bench on its own (also wired as `python -m gateway bench`)."""

from __future__ import annotations

import argparse
import sys

from gateway.bench import command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench")
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
