"""bench/RESULTS.md: one section per benchmark, each replaced in place when that benchmark runs again."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from bench.common import BENCH_DIR, machine_markdown

RESULTS = BENCH_DIR / "RESULTS.md"
HEADER = """# reelgate benchmark results

Written by `make bench` (`python -m bench`). Every figure is a ratio against a reference measured in the same
run on the same machine, with the absolute numbers beside it; the machine is shared and noisy (2 cores), so
compare ratios, not absolute times, and read the spread between rounds as the noise floor. Server under test
pinned to CPU 1, load generator and simulators to CPU 0. None of this is a test assertion.
"""


@dataclass
class Section:
    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""

    def markdown(self) -> str:
        lines = [f"<!-- bench:{self.key} -->", f"## {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        lines.append("")
        lines.extend(f"- {note}" for note in self.notes)
        lines.append(f"- Command: `{self.command}`")
        lines.append(f"- Machine: {machine_markdown()}")
        lines.append(f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
        lines.append(f"<!-- /bench:{self.key} -->")
        return "\n".join(lines)

    def text(self) -> str:
        widths = [
            max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c) for i, c in enumerate(self.columns)
        ]
        out = [f"\n== {self.title}", "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        out.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in self.rows)
        out.extend(f"  * {n}" for n in self.notes)
        return "\n".join(out)


ORDER = ["api", "ledger", "inflight", "download", "render", "peer", "profile"]


def write(sections: list[Section]) -> None:
    existing = RESULTS.read_text() if RESULTS.exists() else ""
    blocks: dict[str, str] = {
        m.group(1): m.group(0) for m in re.finditer(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->", existing, flags=re.S)
    }
    for section in sections:
        blocks[section.key] = section.markdown()
    # Hand-written notes (the profiling record) live between the header and the first section.
    manual = ""
    if "<!-- notes -->" in existing:
        manual = existing.split("<!-- notes -->", 1)[1].split("<!-- /notes -->", 1)[0]
    keys = [k for k in ORDER if k in blocks] + [k for k in blocks if k not in ORDER]
    body = "\n\n".join(blocks[k] for k in keys)
    notes = f"<!-- notes -->{manual}<!-- /notes -->\n\n" if manual else ""
    RESULTS.write_text(f"{HEADER}\n{notes}{body}\n")
