"""Command line: ``python -m turbogroup {demo,bench,version}``."""

from __future__ import annotations

import argparse
import sys

from turbogroup.bench import add_arguments as add_bench_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turbogroup")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a group on an in-memory broker and time it")
    demo.add_argument("-n", "--tasks", type=int, default=1000, help="tasks in the group")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for results")
    bench = sub.add_parser(
        "bench",
        help="time celery.canvas.group against turbogroup.group on each broker",
        description="Dispatch (and collection) benchmark, Celery vs turbogroup in the same "
        "run; prints tables and writes a plot.",
    )
    add_bench_arguments(bench)
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from turbogroup.demo import main as demo_main

        return demo_main(args.tasks, args.timeout)
    if args.command == "bench":
        from turbogroup.bench import main as bench_main

        return bench_main(args)
    from turbogroup import __version__

    print(__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
