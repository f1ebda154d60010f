"""The length-generalisation study at a tiny size: each task's labels are what its description
says, the data come from seeds of their own, the causal model sees no later token, and a run
writes its results and reads them back."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from relpos.studies import length_generalisation as lg  # noqa: E402
from relpos.studies import model as study_model  # noqa: E402
from relpos.studies import run_study  # noqa: E402
from relpos.studies.training import IGNORED  # noqa: E402

TINY = lg.LengthSettings(
    train_length=8,
    test_lengths=(8, 16),
    symbols=16,
    train=200,
    validation=40,
    test=40,
    epochs=2,
    d_model=16,
    n_head=2,
    layers=1,
)


def test_copy_labels_the_next_symbol_to_copy():
    examples, _ = lg.sequences("copy", 12, 50, 16, 0)
    for ids, labels in examples:
        m = 6
        first = ids[:m]
        assert len(ids) == len(labels) == 12 and len(set(first)) == m
        assert ids[m] == lg.SEPARATOR and ids[m + 1 :] == first[:-1]
        assert labels[:m] == [IGNORED] * m
        assert [lab + lg._FIRST for lab in labels[m:]] == first


def test_recall_labels_a_key_seen_before_with_its_value():
    examples, _ = lg.sequences("recall", 20, 50, 16, 1)
    labelled = 0
    for ids, labels in examples:
        bound: dict[int, int] = {}
        for at in range(0, len(ids), 2):
            key, value = ids[at], ids[at + 1] - lg._FIRST - 8
            assert bound.setdefault(key, value) == value  # one value per key
            assert labels[at] == (value if ids[:at:2].count(key) else IGNORED)
            assert labels[at + 1] == IGNORED
            labelled += labels[at] != IGNORED
    assert labelled > 100


def test_flip_flop_labels_each_read_with_the_last_written_bit():
    examples, _ = lg.sequences("flip-flop", 40, 50, 16, 2)
    reads = 0
    for ids, labels in examples:
        assert ids[0] in (lg._WRITE, lg._WRITE + 1)
        bit = None
        for token, label in zip(ids, labels, strict=True):
            if token in (lg._WRITE, lg._WRITE + 1):
                bit = token - lg._WRITE
            if token == lg._READ:
                assert label == bit
                reads += 1
            else:
                assert label == IGNORED
    assert reads > 200


def test_the_data_come_from_their_own_seed():
    one, digest = lg.sequences("recall", 10, 20, 16, 5)
    again, digest_again = lg.sequences("recall", 10, 20, 16, 5)
    assert one == again and digest == digest_again
    assert lg.sequences("recall", 10, 20, 16, 6)[1] != digest


def test_bad_tasks_and_lengths_are_named(tmp_path):
    with pytest.raises(ValueError, match="task='sort' must be one of copy, recall, flip-flop"):
        lg.sequences("sort", 10, 1, 16, 0)
    with pytest.raises(ValueError, match="length=40 needs symbols >= 20, got 16"):
        lg.sequences("copy", 40, 1, 16, 0)
    with pytest.raises(ValueError, match="task='sort' must be one of"):
        run_study("length-generalisation", tmp_path, settings=replace(TINY, tasks=("sort",)))


@pytest.mark.parametrize("scheme", study_model.SCHEMES)
def test_the_causal_model_sees_no_later_token(scheme):
    torch.manual_seed(0)
    model = study_model.Classifier(
        20, 3, scheme, d_model=16, n_head=2, max_len=8, pool="every", causal=True
    ).eval()
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    changed = ids.clone()
    changed[0, 4:] = torch.tensor([9, 10])
    before, after = model(ids), model(changed)
    assert before.shape == (1, 6, 3)
    torch.testing.assert_close(before[:, :4], after[:, :4], rtol=0, atol=0)
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_the_loss_falls():
    record = lg.train_task(replace(TINY, epochs=3, train=400), "flip-flop", "alibi", 0)
    epochs = record["epochs"]
    assert epochs[-1]["train_loss"] < epochs[0]["first_loss"], epochs
    assert set(record["accuracy_by_length"]) == {"8", "16"}
    assert all(0 <= a <= 1 for a in record["accuracy_by_length"].values())


def test_a_run_writes_its_results_and_a_second_run_reads_them_back(tmp_path):
    kw = {"schemes": ["none", "alibi"], "settings": replace(TINY, tasks=("flip-flop", "copy")),
          "show_progress": False}  # fmt: skip
    first = run_study("length-generalisation", tmp_path, seeds=2, **kw)
    assert first["resumed"] == 0 and len(first["runs"]) == 8
    folder = tmp_path / "length-generalisation"
    saved = json.loads((folder / "results.json").read_text())
    assert [r["name"] for r in saved["runs"]] == [r["name"] for r in first["runs"]]
    run = saved["runs"][0]
    assert run["finished"] and set(run["data"]["test_sha256"]) == {"8", "16"}
    for suffix in (".png", ".svg"):
        assert (folder / f"accuracy-by-length{suffix}").stat().st_size > 1000
    table = (folder / "results.md").read_text()
    assert "**flip-flop**" in table and "| alibi | " in table and "n = 16" in table
    again = run_study("length-generalisation", tmp_path, seeds=2, **kw)
    assert again["resumed"] == 8
    assert [r["accuracy_by_length"] for r in again["runs"]] == [
        r["accuracy_by_length"] for r in first["runs"]
    ]


def test_every_test_length_has_its_absolute_positions():
    model = study_model.Classifier(20, 2, "absolute", max_len=96, pool="every", causal=True)
    assert model(torch.randint(3, 20, (1, 96))).shape == (1, 96, 2)
    assert np.isfinite(model.positions.numpy()).all()
