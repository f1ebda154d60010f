"""Runs of a study, recorded and resumable: each run is one JSON file (its configuration, seed,
versions and metrics per epoch) written when it finishes; a run whose file says it finished
with the same configuration is read back instead of trained again."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["progress", "record_path", "run_once", "versions"]


def versions() -> dict[str, str]:
    """Python, torch and this package, as a run records them."""
    from importlib import metadata

    import torch

    try:
        ours = metadata.version("relpos-conformance")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        ours = "checkout"
    return {"python": platform.python_version(), "torch": torch.__version__, "relpos": ours}


def record_path(out: Path, study: str, name: str) -> Path:
    return out / study / "runs" / f"{name.replace('/', '-')}.json"


def run_once(
    out: Path, study: str, name: str, config: dict[str, Any], train: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """The record of run ``name`` of ``study`` with ``config``, and whether it was read back:
    from its file when a finished run of the same configuration wrote it, else by calling
    ``train`` (its metrics) and writing the record, atomically."""
    path = record_path(out, study, name)
    if path.exists():
        kept = json.loads(path.read_text())
        if kept.get("finished") and kept.get("config") == config:
            return kept, True
    record: dict[str, Any] = {"study": study, "name": name, "config": config}
    record["versions"] = versions()
    record.update(train())
    record["finished"] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(partial, path)
    return record, False


def progress(total: int, description: str, enabled: bool = True) -> Any:
    """A tqdm bar (the ``studies`` extra), or a silent one when ``enabled`` is False."""
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError as missing:
        raise ModuleNotFoundError(
            "the studies show their progress with tqdm: pip install 'relpos-conformance[studies]'"
        ) from missing
    return tqdm(total=total, desc=description, disable=not enabled, leave=False)
