"""Prints a pip constraints file that pins every runtime dependency, and those of the extras the product offers
its users, to the lowest version pyproject.toml allows.

`make lowest` installs reelgate with these pins (development tools at their usual versions) and runs a part of
the tests on top, so a bound that promises more than the code can use fails in CI, not on a user's machine.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# The extras that are tools of this repository rather than parts of the product keep their usual versions.
_DEVELOPMENT_EXTRAS = frozenset({"test", "dev"})
_BOUND = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def constraints(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, extra_requirements in project.get("optional-dependencies", {}).items():
        if extra not in _DEVELOPMENT_EXTRAS:
            requirements.extend(extra_requirements)
    pins = []
    for requirement in requirements:
        found = _BOUND.match(requirement)
        if found is None:
            raise SystemExit(f"no lower bound to pin in {requirement!r}")
        name, _extras, version = found.groups()
        pins.append(f"{name}=={version}")
    return pins


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print("\n".join(constraints(root / "pyproject.toml")))
