"""The long-text study at a tiny size: the Wikipedia bytes load with their recorded checksums,
the language models are causal and XL's memory is what the previous segment left, bits per
character are computed as described, and a run writes its results and reads them back."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from relpos.studies import data as study_data  # noqa: E402
from relpos.studies import long_text, run_study  # noqa: E402
from relpos.studies.model import LanguageModel  # noqa: E402

TINY = long_text.LongSettings(
    segment=16, spans=(1, 2), streams=4, steps=30, evaluations=2, eval_bytes=1024, d_model=16,
    n_head=2, layers=1,
)  # fmt: skip


def test_the_wikipedia_bytes_load_with_their_checksum_in_contiguous_splits():
    text = study_data.wiki()
    described = text.describe()
    assert described["member_sha256"] == study_data.SOURCES["wiki"].member_sha256
    total = len(text.train) + len(text.validation) + len(text.test)
    assert total == 6_089_746  # bytes (6,071,068 UTF-8 characters)
    assert len(text.train) == int(0.9 * total) and abs(len(text.validation) - len(text.test)) <= 1
    assert text.train.startswith(b"<mediawiki")


@pytest.mark.parametrize("scheme", LanguageModel.SCHEMES)
def test_the_language_models_see_no_later_byte(scheme):
    torch.manual_seed(0)
    model = LanguageModel(scheme, d_model=16, n_head=2, layers=2, max_len=16).eval()
    ids = torch.randint(0, 256, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 256
    before, _ = model(ids)
    after, _ = model(changed)
    assert before.shape == (2, 10, 256)
    torch.testing.assert_close(before[:, :6], after[:, :6], rtol=0, atol=0)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_xl_with_memory_computes_what_one_longer_segment_computes():
    """Segment-level recurrence is exact at evaluation: two segments, the second with the
    first's states as memory, give the second segment's logits of one call over both."""
    torch.manual_seed(1)
    model = LanguageModel("xl", d_model=16, n_head=2, layers=2).eval()
    ids = torch.randint(0, 256, (2, 12))
    whole, _ = model(ids)
    _, memory = model(ids[:, :5], keep=5)
    assert memory is not None and [m.shape for m in memory] == [(2, 5, 16)] * 2
    second, _ = model(ids[:, 5:], memory)
    torch.testing.assert_close(second, whole[:, 5:], rtol=1e-5, atol=1e-5)


def test_the_absolute_model_keeps_no_memory_and_names_its_limit():
    model = LanguageModel("absolute", d_model=16, n_head=2, max_len=8)
    with pytest.raises(ValueError, match="keeps no memory"):
        model(torch.zeros(1, 4, dtype=torch.long), keep=4)
    with pytest.raises(ValueError, match="a segment of 9 tokens needs max_len >= 9"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="scheme='rope' must be one of absolute, xl"):
        LanguageModel("rope")


def test_bits_per_character_of_a_uniform_model_are_eight():
    model = LanguageModel("absolute", d_model=16, n_head=2, max_len=16)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    data = torch.randint(0, 256, (3, 50))
    assert math.isclose(long_text.bits_per_character(model, data, 16, 0), 8.0, rel_tol=1e-6)


def test_the_loss_falls():
    record = long_text.train_model(replace(TINY, steps=60), "xl, memory", 0)
    rows = record["evaluations"]
    assert [row["step"] for row in rows] == [30, 60]  # evaluations 2, the last step last
    assert rows[-1]["train_bpc"] < record["first_bpc"], rows
    assert set(record["test_bpc_by_span"]) == {"16", "32"}


def test_a_run_writes_its_results_and_a_second_run_reads_them_back(tmp_path):
    kw = {"models": ["absolute", "xl, memory"], "settings": TINY, "show_progress": False}
    first = run_study("long-text", tmp_path, seeds=1, **kw)
    assert first["resumed"] == 0 and len(first["runs"]) == 2
    folder = tmp_path / "long-text"
    saved = json.loads((folder / "results.json").read_text())
    assert [r["name"] for r in saved["runs"]] == ["absolute/seed0", "xl-memory/seed0"]
    assert saved["runs"][0]["data"]["member_sha256"] == study_data.SOURCES["wiki"].member_sha256
    for suffix in (".png", ".svg"):
        assert (folder / f"bpc-by-span{suffix}").stat().st_size > 1000
    table = (folder / "results.md").read_text()
    assert "| xl, memory | " in table and "span 32" in table
    again = run_study("long-text", tmp_path, seeds=1, **kw)
    assert again["resumed"] == 2
    with pytest.raises(ValueError, match="model='lstm' must be one of absolute"):
        run_study("long-text", tmp_path, models=["lstm"], settings=TINY)
