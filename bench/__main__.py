"""`python -m bench [--quick] [--only api,ledger,...] [--db sqlite,postgresql]`: runs the benchmarks, prints
each table, and rewrites their sections of bench/RESULTS.md. Quick: a few minutes; full: longer runs, more
rounds, both databases."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from collections.abc import Callable

from bench import fixtures
from bench.common import machine_markdown
from bench.report import Section, write

ALL = ["api", "ledger", "inflight", "download", "render", "peer"]


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

    runners: dict[str, Callable[[], Section]] = {}
    if "api" in wanted:
        from bench import b_api

        runners["api"] = lambda: b_api.run(args.quick, databases)
    if "ledger" in wanted:
        from bench import b_ledger

        runners["ledger"] = lambda: b_ledger.run(args.quick, databases)
    if "inflight" in wanted:
        from bench import b_inflight

        runners["inflight"] = lambda: b_inflight.run(args.quick, databases)
    if "download" in wanted:
        from bench import b_download

        runners["download"] = lambda: b_download.run(args.quick)
    if "render" in wanted:
        from bench import b_render

        runners["render"] = lambda: b_render.run(args.quick)
    if "peer" in wanted:
        from bench import b_peer

        runners["peer"] = lambda: b_peer.run(args.quick, databases)

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
