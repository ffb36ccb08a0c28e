"""Summarise a py-spy raw profile: `python -m bench.pyspy_top FILE [N] [filter]` prints the hottest frames,
inclusive (share of samples a frame is on the stack) and self (leaf), optionally only frames matching filter."""

from __future__ import annotations

import collections
import sys


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            total += n
            frames = stack.split(";")
            leaf[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    print(f"{total} samples")
    print("-- inclusive")
    for frame, n in inclusive.most_common():
        if only in frame:
            print(f"{n / total:6.1%}  {frame[:160]}")
            top -= 1
            if top <= 0:
                break
    print("-- self")
    for frame, n in leaf.most_common(15):
        print(f"{n / total:6.1%}  {frame[:160]}")


if __name__ == "__main__":
    main()
