"""Named crash points for reliability testing: `REELGATE_CRASH_AT=<name>` kills the process right there.

Timing a SIGKILL from outside cannot hit "between the storage write and the commit" reliably; these
points let the crash tests die at exactly the moments that matter. Unset (always, in production),
each check is one dictionary lookup.
"""

from __future__ import annotations

import os

AFTER_PROVIDER_ACCEPTED = "after_provider_accepted"  # the provider has the job; we have not recorded its id
DURING_OUTPUT_FETCH = "during_output_fetch"  # the output is partly downloaded to staging
AFTER_STORE_BEFORE_COMMIT = "after_store_before_commit"  # the object is stored; the database does not know


def crash_point(name: str) -> None:
    if os.environ.get("REELGATE_CRASH_AT") == name:
        marker = os.environ.get("REELGATE_CRASH_MARKER")
        if marker:
            # Crash once: the restarted process (same environment) must get past this point.
            if os.path.exists(marker):
                return
            with open(marker, "w") as handle:
                handle.write(name)
        os._exit(137)
