"""The clip-range study at a tiny size: its variants, the probe's data and what the probe can
and cannot learn, Shaw's one-table models, and a run that writes its results, reads them back,
and gives the same numbers in worker processes as in this one."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from relpos.studies import clip_range, run_study  # noqa: E402
from relpos.studies import data as study_data  # noqa: E402
from relpos.studies import model as study_model  # noqa: E402
from relpos.studies.text_classification import Settings, train_one  # noqa: E402

TEXT = Settings(epochs=1, train_limit=128, d_model=16, n_head=2, layers=1, max_len=16)
PROBE = clip_range.ProbeSettings(
    length=16, offsets=(3,), train=2000, validation=200, test=200, epochs=3, d_model=32
)
TINY = clip_range.ClipSettings(
    text=TEXT, probe=PROBE, ks=(0, 4, 32), one_sided=((-4, 0),), tables_k=4
)


def test_the_variants_leave_out_a_range_that_covers_every_distance():
    labels = [v.label for v in clip_range.variants(TINY, 16, floor=True)]
    # k = 32 >= 16 - 1 is the unclipped model at this length
    assert labels == [
        "none",
        "k = 0",
        "k = 4",
        "unclipped",
        "[-4, 0]",
        "key only, k = 4",
        "value only, k = 4",
    ]
    unclipped = clip_range.Variant("unclipped", None)
    assert unclipped.range_at(16) == (-15, 15)
    assert clip_range.Variant("k", (-2, 2), tables="key").slug() == "clip-2_2-key"


def test_the_probe_labels_the_symbol_at_its_offset_from_a_seed_of_its_own():
    (train, validation, test), described = clip_range.probe_data(PROBE, 3)
    assert len(train) == 2000 and len(validation) == len(test) == 200
    for ids, label in train[:50] + test[:50]:
        assert len(ids) == 16 and ids[0] == 2 and ids[3] - 3 == label
        assert all(3 <= t < 3 + PROBE.symbols for t in ids[1:])
    again, described_again = clip_range.probe_data(PROBE, 3)
    assert again[0] == train and described_again["sha256"] == described["sha256"]
    assert clip_range.probe_data(PROBE, 4)[1]["sha256"] != described["sha256"]
    with pytest.raises(ValueError, match=r"offset=16 must be in \[1, length - 1 = 15\]"):
        clip_range.probe_data(PROBE, 16)


def test_the_probe_is_learnt_inside_the_clip_range_and_not_outside():
    """The study's premise: at offset 3, k = 4 gives distance 3 a row of its own and the
    model reads the symbol there; k = 2 shares one row among distances 2 to 15, and the
    model stays near the bag-of-symbols floor."""
    inside = clip_range.train_probe(PROBE, 3, clip_range.Variant("k = 4", (-4, 4)), 0)
    outside = clip_range.train_probe(PROBE, 3, clip_range.Variant("k = 2", (-2, 2)), 0)
    assert inside["test_accuracy"] > 0.9, inside["epochs"]
    assert outside["test_accuracy"] < 0.5, outside["epochs"]


def test_one_table_models_keep_one_table():
    key = study_model.Classifier(20, 2, "shaw", d_model=16, n_head=2, tables="key")
    value = study_model.Classifier(20, 2, "shaw", d_model=16, n_head=2, tables="value")
    for layer in key.layers:
        assert layer.attention.rel_v is None
        assert isinstance(layer.attention.rel_k, torch.nn.Parameter)
    for layer in value.layers:
        assert isinstance(layer.attention.rel_v, torch.nn.Parameter)
        names = {name for name, _ in layer.attention.named_parameters()}
        assert "rel_k" not in names and not layer.attention.rel_k.any()
    # the other weights do not depend on which tables are kept
    models = {}
    for tables in study_model.TABLES:
        torch.manual_seed(3)
        models[tables] = study_model.Classifier(20, 2, "shaw", d_model=16, tables=tables)
    for tables in ("key", "value"):
        torch.testing.assert_close(models[tables].head.weight, models["both"].head.weight)


def test_bad_tables_and_pools_are_named():
    with pytest.raises(ValueError, match="tables='nope' must be one of both, key, value"):
        study_model.Classifier(10, 2, "shaw", tables="nope")
    with pytest.raises(ValueError, match="tables='key' is Shaw's: scheme='t5' has no tables"):
        study_model.Classifier(10, 2, "t5", tables="key")
    with pytest.raises(ValueError, match="pool='max' must be one of mean, first"):
        study_model.Classifier(10, 2, "shaw", pool="max")
    with pytest.raises(ValueError, match="workers=0 must be an integer >= 1"):
        run_study("clip-range", None, workers=0)


def test_the_first_token_pool_reads_the_first_token():
    torch.manual_seed(0)
    model = study_model.Classifier(20, 3, "shaw", d_model=16, n_head=2, pool="first").eval()
    ids = torch.tensor([[3, 4, 5, 6]])
    # one layer of attention lets every token reach the first; the pool reads its state only
    captured = {}
    model.norm.register_forward_hook(lambda m, i, o: captured.setdefault("x", o))
    logits = model(ids)
    torch.testing.assert_close(logits, model.head(captured["x"][:, 0]))


def test_its_k16_text_run_is_the_text_classification_studys_shaw_run():
    text = replace(TEXT, max_len=32)
    settings = replace(TINY, text=text, ks=(16,))
    jobs = {job.name: job for job in clip_range._jobs(settings, False, 1, ["trec"])}
    ours = jobs["trec/clip-16_16-both/seed0"].train()
    theirs = train_one(study_data.load("trec"), "shaw", 0, replace(text, clip=(-16, 16)))
    assert ours["epochs"] == theirs["epochs"]


def test_a_run_writes_its_results_reads_them_back_and_workers_change_no_number(tmp_path):
    kw = {"datasets": ["trec"], "settings": TINY, "show_progress": False}
    first = run_study("clip-range", tmp_path / "one", seeds=1, **kw)
    variants = clip_range.variants(TINY, TEXT.max_len)
    probes = clip_range.variants(TINY, PROBE.length, floor=True)
    assert first["resumed"] == 0 and len(first["runs"]) == len(variants) + len(probes)
    folder = tmp_path / "one" / "clip-range"
    saved = json.loads((folder / "results.json").read_text())
    assert [r["name"] for r in saved["runs"]] == [r["name"] for r in first["runs"]]
    assert {r["config"]["dataset"] for r in saved["runs"]} == {"trec", "probe3"}
    for suffix in (".png", ".svg"):
        assert (folder / f"accuracy-by-k{suffix}").stat().st_size > 1000
    table = (folder / "results.md").read_text()
    assert "| unclipped | " in table and "probe, offset 3" in table
    # the floor has no text run: its cell says so
    assert table.splitlines()[2].startswith("| none | - | ")
    again = run_study("clip-range", tmp_path / "one", seeds=1, **kw)
    assert again["resumed"] == len(first["runs"])
    spread = run_study("clip-range", tmp_path / "two", seeds=1, workers=2, **kw)
    assert spread["resumed"] == 0
    assert [(r["name"], r["test_accuracy"], r["epochs"]) for r in spread["runs"]] == [
        (r["name"], r["test_accuracy"], r["epochs"]) for r in first["runs"]
    ]
