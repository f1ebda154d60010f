"""Golden vectors: export, verify, the file format, coverage, and that tampering is found."""

from __future__ import annotations

import json

import pytest

from relpos.equivalence.cli import main
from relpos.spec import SPEC_VERSION, all_encodings
from relpos.spec._cases import MASK_KINDS


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    out = tmp_path_factory.mktemp("vectors")
    assert main(["vectors", "export", "--out", str(out)]) == 0
    return out


def test_export_writes_every_case(vectors):
    files = sorted(p.name for p in vectors.glob("*.json") if p.name != "manifest.json")
    cases = [f"{e.name}-{c.name}.json" for e in all_encodings() for c in e.cases()]
    assert files == sorted(cases)
    assert len(files) >= 40
    manifest = json.loads((vectors / "manifest.json").read_text())
    assert manifest["spec_version"] == SPEC_VERSION and len(manifest["files"]) == len(files)


def test_file_format(vectors):
    doc = json.loads((vectors / "shaw-mask_fully_masked_row.json").read_text())
    assert doc["spec_version"] == SPEC_VERSION and doc["encoding"] == "shaw"
    assert doc["params"] == {"clip": [-2, 2], "key_query": False, "scale": None}
    assert set(doc["inputs"]) == {"q", "k", "v", "rel_k", "rel_v", "mask"}
    assert all(isinstance(x, str) for x in doc["inputs"]["q"][0][0][0])
    scores = doc["expected"]["scores"][0][0]
    masked_row = [row for row in scores if all(s == "-inf" for s in row)]
    assert masked_row, "the fully masked row is stored as -inf scores"
    probs = doc["expected"]["probs"][0][0][scores.index(masked_row[0])]
    assert all(float(p) == 0 for p in probs)
    digits = doc["expected"]["out"][0][0][0][0].lstrip("-0.").replace(".", "")
    assert len(digits) >= 30
    assert set(doc["tolerance"]) == {"float64", "float32", "bfloat16", "float16"}
    tol = doc["tolerance"]
    assert tol["float64"]["out"] < tol["float32"]["out"] < tol["float16"]["out"]


def test_cases_cover_every_option():
    kinds = {c.mask for e in all_encodings() for c in e.cases()}
    assert kinds == set(MASK_KINDS)
    shaw = {c.name: c for c in all_encodings()[0].cases()}
    assert any(c.options.get("clip") == (0, 0) for c in shaw.values())
    assert any(c.options.get("key_query") for c in shaw.values())
    assert any(c.layouts.get("rel_k") == 1 for c in shaw.values())
    assert any("rel_v" not in c.include for c in shaw.values())
    assert any(c.dims["mlen"] > 0 for c in shaw.values())
    xl = all_encodings()[1].cases()
    styles = {c.options.get("clamp_style") for c in xl if c.options.get("clamp_len") is not None}
    assert styles == {None, "symmetric"}  # None = the default style, "upper"
    assert {c.options.get("attn_type", "bi") for c in xl} == {"bi", "uni"}
    assert any("seg_ids" in c.include for c in xl)


def test_verify_passes_then_finds_a_tampered_value(vectors, tmp_path, capsys):
    assert main(["vectors", "verify", str(vectors)]) == 0
    count = sum(len(e.cases()) for e in all_encodings())
    assert f"{count} files verified: every value agrees with the oracle" in capsys.readouterr().out
    tampered = tmp_path / "v"
    tampered.mkdir()
    for p in vectors.glob("*.json"):
        (tampered / p.name).write_text(p.read_text())
    path = tampered / "xl-segments.json"
    doc = json.loads(path.read_text())
    original = doc["expected"]["out"][1][0][2][1]
    doc["expected"]["out"][1][0][2][1] = original[:-12] + "000000000001"
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["vectors", "verify", str(tampered)]) == 1
    out = capsys.readouterr().out
    assert "xl-segments.json: out[1, 0, 2, 1]=" in out and "1 differences" in out


def test_verify_of_an_empty_directory_fails(tmp_path):
    assert main(["vectors", "verify", str(tmp_path)]) == 1


def test_large_cases_reach_long_positions_and_far_regions():
    for enc in all_encodings():
        (case,) = enc.large_cases()
        assert case.dims["qlen"] >= 256 and case.dims["qlen"] + case.dims["mlen"] >= 1024
        assert case.name.startswith("large_")
    options = {e.name: e.large_cases()[0].options for e in all_encodings()}
    assert options["shaw"]["clip"][0] <= -300  # rows far from the diagonal
    assert options["t5"]["max_distance"] < 1024  # distances beyond max_distance
    assert options["deberta"]["max_position"] < 1024  # DeBERTa-v2's log buckets


def test_large_vectors_are_evaluated_in_balls_and_verify(tmp_path):
    """One encoding's long-position file: exported through the ball path, re-derived by
    verify, and a value tampered beyond its digits is found."""
    from relpos.spec.vectors import LARGE_DIGITS, verify

    assert main(["vectors", "export", "--out", str(tmp_path), "--encoding", "rope", "--large"]) == 0
    path = tmp_path / "rope-large_default.json"
    doc = json.loads(path.read_text())
    assert doc["digits"] == LARGE_DIGITS and doc["dims"]["klen"] == 1024
    for other in tmp_path.glob("rope-*.json"):
        if other != path:
            other.unlink()
    checked, differences = verify(tmp_path)
    assert checked == 1 and differences == []
    last = doc["expected"]["out"][0][0][255]
    last[0] = str(float(last[0]) * (1 + 1e-12))
    path.write_text(json.dumps(doc))
    checked, differences = verify(tmp_path)
    assert [d.field for d in differences] == ["out"] and differences[0].index == (0, 0, 255, 0)
