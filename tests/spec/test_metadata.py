"""Package metadata agrees with itself: versions in pyproject, CITATION.cff and the spec."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from relpos.spec import SPEC_VERSION, all_encodings

ROOT = Path(__file__).resolve().parents[2]


def test_citation_matches_package_and_spec_versions():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(version)}$", citation, re.M)
    assert f"Specification version {SPEC_VERSION}." in citation


def test_citation_lists_every_paper_the_spec_cites():
    citation = (ROOT / "CITATION.cff").read_text()
    for enc in all_encodings():
        # The primary reference of each encoding (Huang et al. 2020 is an option's source).
        assert f"arXiv:{enc.references[0].arxiv}" in citation
    assert "arXiv:1906.08237" in citation
