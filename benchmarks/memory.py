"""Peak extra resident memory of one benchmark case, measured in a fresh process:
``python -m benchmarks.memory CASE_ID`` prints {"case", "peak_extra_mib"} as JSON.

The case's inputs are built and it runs once (JAX compiles); then the kernel's peak-RSS mark
is reset (``/proc/self/clear_refs``), the case runs again, and the new peak minus the resident
size before that run is the memory the pass itself needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.cases import cases


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(case_id: str) -> dict:
    case = next(c for c in cases((int(case_id.rsplit("-L", 1)[1]),)) if c.id == case_id)
    run = case.build()
    run()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    result = run()
    peak = _status_kib("VmHWM")
    del result
    return {"case": case_id, "peak_extra_mib": round((peak - before) / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
