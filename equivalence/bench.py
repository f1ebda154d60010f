"""``relpos bench``: runs the benchmarks twice (default allocator and heap reuse), measures
peak memory at the largest size, and writes the markdown tables and JSON.

Run from a checkout (the benchmarks live in ``benchmarks/``, beside the packages). Every figure
is a median of rounds measured in one run, reported with its ratio to the floor
(``scaled_dot_product_attention`` with a float bias) at the same size, mode and allocator.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

__all__ = ["HEAP_REUSE", "main", "oracle"]

#: glibc settings that keep freed memory for reuse instead of returning it to the OS.
HEAP_REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
ALLOCATORS = {"default": {}, "heap reuse": HEAP_REUSE}


def _root() -> Path:
    root = Path.cwd()
    if not (root / "benchmarks" / "test_speed.py").exists():
        raise SystemExit(
            "relpos bench: run it from a checkout of relpos-conformance (the "
            "directory holding benchmarks/)"
        )
    return root


#: Cases run in separate processes: JAX's CPU thread pool keeps two cores busy after a JAX
#: case and slowed torch cases in the same process by up to 25x (measured).
PROCESS_GROUPS = ("not jax-", "jax-")


def _run_speed(
    root: Path, out: Path, env_extra: dict[str, str], sizes: str, rounds: int, select: str | None
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        **env_extra,
        "RELPOS_BENCH_SIZES": sizes,
        "RELPOS_BENCH_ROUNDS": str(rounds),
    }
    merged: list[dict[str, Any]] = []
    for n, group in enumerate(PROCESS_GROUPS):
        part = out.with_suffix(f".part{n}.json")
        keyword = group if not select else f"({group}) and ({select})"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/test_speed.py",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={part}",
            "--benchmark-disable-gc",
            "--benchmark-sort=name",
            "-k",
            keyword,
        ]
        subprocess.run(cmd, cwd=root, env=env, check=False)
        if part.exists():
            merged += json.loads(part.read_text())["benchmarks"]
            part.unlink()
    if not merged:
        raise SystemExit(f"relpos bench: no results for {out}")
    out.write_text(json.dumps({"benchmarks": merged}, indent=1) + "\n")
    return merged


def _memory(root: Path, size: int, select: str | None) -> dict[str, float]:
    sys.path.insert(0, str(root))
    from benchmarks.cases import REFERENCE_MAX, cases

    peaks = {}
    for case in cases((size,)):
        if case.mode != "forward" or (select and select not in case.id):
            continue
        if "reference" in case.name and size > REFERENCE_MAX:
            continue
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", case.id],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            peaks[case.id] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_extra_mib"]
        sys.stderr.write(f"memory {case.id}: {peaks.get(case.id, 'failed')}\n")
    return peaks


def table(
    results: dict[str, list[dict[str, Any]]], peaks: dict[str, float], floor: str = "sdpa_bias"
) -> str:
    """Markdown: per mode, one row per (implementation, setting); per allocator and size, the
    median in ms and the ratio to the floor."""
    lines = []
    sizes = sorted({b["extra_info"]["L"] for runs in results.values() for b in runs})
    for mode in ("forward", "backward"):
        title = "forward" if mode == "forward" else "forward and backward"
        lines += [f"### {title}", ""]
        header = "| case | setting |" + "".join(
            f" {alloc} L={L} |" for alloc in results for L in sizes
        )
        lines += [header, "|---|---|" + "---:|" * (len(results) * len(sizes))]
        rows: dict[tuple[str, str], dict[tuple[str, int], str]] = {}
        for alloc, runs in results.items():
            medians = {
                (b["extra_info"]["name"], b["extra_info"]["setting"], b["extra_info"]["L"]): b[
                    "stats"
                ]["median"]
                for b in runs
                if b["extra_info"]["mode"] == mode
            }
            for (name, setting, L), median in medians.items():
                base = medians.get((floor, "clip16", L))
                ratio = f" ({median / base:.2f}x)" if base else ""
                rows.setdefault((name, setting), {})[(alloc, L)] = f"{median * 1e3:.1f}{ratio}"
        for (name, setting), cells in sorted(rows.items()):
            lines.append(
                f"| {name} | {setting} |"
                + "".join(f" {cells.get((alloc, L), '-')} |" for alloc in results for L in sizes)
            )
        lines.append("")
    if peaks:
        lines += [
            "### peak extra memory, forward, largest size (MiB)",
            "",
            "| case | MiB | x floor |",
            "|---|---:|---:|",
        ]
        floor_peak = next((v for k, v in peaks.items() if k.startswith(floor + "-")), None)
        for case_id, mib in sorted(peaks.items()):
            ratio = f"{mib / floor_peak:.2f}" if floor_peak else "-"
            lines.append(f"| {case_id} | {mib} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


def main(sizes: str, rounds: int, select: str | None, out_dir: str) -> int:
    root = _root()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        alloc: _run_speed(
            root, out / f"speed-{alloc.replace(' ', '-')}.json", env, sizes, rounds, select
        )
        for alloc, env in ALLOCATORS.items()
    }
    largest = max(int(s) for s in sizes.split(","))
    peaks = _memory(root, largest, select)
    (out / "memory.json").write_text(json.dumps(peaks, indent=1) + "\n")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
    command = f"relpos bench --sizes {sizes} --rounds {rounds}" + (
        f" --select {select}" if select else ""
    )
    text = (
        f"# Benchmarks ({date.today().isoformat()})\n\nMachine: {machine}. Command: "
        f"`{command}`. Medians in ms; in parentheses the ratio to "
        "`scaled_dot_product_attention` with a float bias at the same size, mode and "
        "allocator (heap reuse: MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000). "
        "Reference variants run up to L = 256; torch and JAX cases run in separate "
        "processes.\n\n" + table(results, peaks)
    )
    (out / "latest.md").write_text(text)
    sys.stdout.write(text)
    return 0


def oracle(size: int, rounds: int, out_dir: str) -> int:
    """``relpos bench --oracle``: benchmarks/oracle.py, tables in OUT/oracle."""
    root = _root()
    sys.path.insert(0, str(root))
    from benchmarks.oracle import main as run_oracle

    command = f"relpos bench --oracle --sizes {size} --rounds {rounds}"
    return int(run_oracle(size, rounds, Path(out_dir) / "oracle", command))
