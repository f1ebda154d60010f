"""Benchmarks run single-threaded pytest; the report header names the allocator setting."""

import os


def pytest_report_header(config):
    reuse = os.environ.get("MALLOC_MMAP_MAX_") == "0"
    return [f"relpos bench allocator: {'heap reuse' if reuse else 'default'}"]
