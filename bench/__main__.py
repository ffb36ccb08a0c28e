"""`python -m bench [--quick] [--only api,ledger,...] [--db sqlite,postgresql]`: runs the benchmarks, prints
each table, and rewrites their sections of bench/RESULTS.md. Quick: a few minutes; full: longer runs, more
rounds, both databases."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
import traceback
from collections.abc import Callable

from bench import fixtures
from bench.common import machine_markdown
from bench.report import Section, write

ALL = ["api", "layer", "longread", "ledger", "queue", "inflight", "recovery", "download", "render", "peer"]


# Benchmarks that run on one storage setup only, whatever databases are asked for.
NO_DATABASE = {"download", "render"}


def _runner(name: str, quick: bool, databases: list[str]) -> Callable[[], Section]:
    """The benchmark's run(), its module imported only when it is wanted (some import heavy dependencies)."""
    module = importlib.import_module(f"bench.b_{name}")
    if name in NO_DATABASE:
        return lambda: module.run(quick)
    return lambda: module.run(quick, databases)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (a few minutes in all)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--db", default=None, help="sqlite,postgresql (default: quick sqlite, full both if reachable)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if args.db:
        databases = [d.strip() for d in args.db.split(",")]
    else:
        databases = ["sqlite"] if args.quick else ["sqlite", *(["postgresql"] if fixtures.pg_available() else [])]
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"machine: {machine_markdown()}", flush=True)

    runners = {name: _runner(name, args.quick, databases) for name in wanted}

    failed = 0
    for name in [n for n in ALL if n in runners]:
        started = time.monotonic()
        print(f"\n### {name}", flush=True)
        try:
            section = runners[name]()
        except Exception:  # one broken benchmark must not lose the others' figures
            failed += 1
            traceback.print_exc()
            continue
        section.command = command
        print(section.text(), flush=True)
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
        if not args.no_write:
            write([section])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
