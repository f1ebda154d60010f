"""The HTML report and ``relpos explain``: a self-contained page, every failure with its
pictures, a passing run with its closest call, and pictures whose numbers say what the bug
is (a sign bug is right at distance 0 and wrong at every other distance)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from relpos.equivalence.cli import main
from relpos.equivalence.draws import Draw

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

SIGN = "tests.meta.planted:shaw_sign"
PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """What a test needs of a report page: external references, sections, images, cells."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.scripts = 0
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.sections: list[dict] = []  # failure sections: title, images
        self.closest_images: list[bytes] = []
        self.cells: list[str] = []
        self._in: list[str] = []
        self._closest = False
        self._title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if "id" in a:
            self.ids.add(a["id"])
            if a["id"] == "closest":
                self._closest = True
        for name in ("src", "href"):
            ref = a.get(name)
            if ref is None:
                continue
            if ref.startswith("#"):
                self.links.append(ref[1:])
            elif not ref.startswith("data:"):
                self.external.append(ref)
        if tag == "link":
            self.external.append(a.get("href", "<link>"))
        if tag == "section" and a.get("class") == "failure":
            self.sections.append({"id": a["id"], "title": "", "images": []})
        if tag == "h3" and self.sections and not self._closest:
            self._title = True
        if tag == "img":
            data = base64.b64decode(a["src"].split(",", 1)[1])
            if self._closest:
                self.closest_images.append(data)
            elif self.sections:
                self.sections[-1]["images"].append(data)
        if tag == "td" and a.get("class") == "cell":
            self.cells.append(a.get("style", ""))

    def handle_endtag(self, tag):
        if tag == "h3":
            self._title = False

    def handle_data(self, data):
        if self._title:
            self.sections[-1]["title"] += data


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def sign_report(tmp_path_factory):
    """A planted sign bug checked with --html and --json (two properties, two dtypes)."""
    folder = tmp_path_factory.mktemp("sign")
    html, report = folder / "r.html", folder / "r.json"
    argv = ["check", "--target", SIGN, "--encoding", "shaw", "--seed", "3"]
    argv += ["--property", "oracle", "--property", "golden"]
    argv += ["--dtype", "float64", "--dtype", "float32"]
    code = main([*argv, "--html", str(html), "--json", str(report)])
    assert code == 1  # the bug is found
    return html, report


def test_the_page_is_self_contained_and_every_failure_has_its_figures(sign_report):
    html, report = sign_report
    page = _page(html)
    assert page.external == [] and page.scripts == 0  # nothing fetched, nothing run
    rows = json.loads(report.read_text())["results"]
    failed = [r for r in rows if r["status"] == "fail"]
    assert len(failed) == 4 and len(page.sections) == 4
    for section in page.sections:
        assert section["images"], f"{section['title']} has no figure"
        assert all(image.startswith(PNG) for image in section["images"])
    # the matrix has one cell per property, coloured, and each failed cell links to a failure
    assert len(page.cells) == 2 and all("background:#" in c for c in page.cells)
    assert page.links and set(page.links) <= page.ids


def test_a_passing_run_shows_its_closest_call(tmp_path):
    html = tmp_path / "pass.html"
    argv = ["check", "--encoding", "alibi", "--backend", "torch", "--variant", "reference"]
    argv += ["--property", "oracle", "--dtype", "float32", "--seed", "1", "--html", str(html)]
    assert main(argv) == 0
    page = _page(html)
    assert page.sections == []
    assert len(page.closest_images) == 1 and page.closest_images[0].startswith(PNG)
    assert "Every one of 1 checks passed" in html.read_text()


def test_a_sign_bug_is_right_at_distance_zero_and_wrong_at_every_other():
    """The numbers behind the pictures: for a Shaw table read with the wrong sign, the scores'
    error / bound, largest per distance, is within the bound at distance 0 only."""
    from relpos.equivalence.pictures import case_errors

    from .planted import shaw

    draw = Draw(
        "shaw",
        {"bsz": 1, "n_head": 2, "qlen": 12, "mlen": 4, "d_head": 8},
        {"clip": (-20, 20), "key_query": False, "scale": None},
        mask="none",
        values="normal",
        seed=5,
    )
    case = case_errors("oracle", shaw("sign"), "float64", draw)
    scores = next(q for q in case.quantities if q.name == "scores")
    per_pair = scores.ratio.max(axis=(0, 1))  # (qlen, klen)
    distance = case.distance[0]
    assert (per_pair[distance == 0] <= 1).all()
    assert (per_pair[distance != 0] > 1).all()
    # the table index the spec reads is the clip row, and the correct code is within bound
    assert case.index is not None and case.index[0] == "clip row c_ij"
    correct = case_errors("oracle", shaw(None), "float64", draw)
    assert correct.worst <= 1


def test_explain_writes_the_pictures_of_a_reports_failures(sign_report, tmp_path, capsys):
    _, report = sign_report
    out = tmp_path / "pictures"
    assert main(["explain", str(report), "--out", str(out)]) == 0
    written = sorted(out.glob("*.png"))
    rows = json.loads(report.read_text())["results"]
    assert len(written) >= sum(r["status"] == "fail" for r in rows)
    assert all(p.read_bytes().startswith(PNG) for p in written)
    assert "largest error / bound: scores" in capsys.readouterr().out


def test_explain_takes_a_repros_own_arguments(tmp_path, capsys):
    draw = Draw(
        "t5",
        {"bsz": 1, "n_head": 2, "qlen": 5, "mlen": 3, "d_head": 4},
        {"num_buckets": 8, "max_distance": 16, "bidirectional": True, "scale": None},
    )
    argv = ["explain", "--implementation", "torch-t5-fast", "--property", "oracle"]
    argv += ["--dtype", "float32", "--draw", repr(draw), "--out", str(tmp_path)]
    assert main(argv) == 0
    (written,) = tmp_path.glob("*given.png")
    assert written.read_bytes().startswith(PNG)
    assert "the given input" in capsys.readouterr().out


def _repro(draw: str) -> list[str]:
    return [
        "--implementation",
        "torch-shaw-fast",
        "--property",
        "oracle",
        "--dtype",
        "float32",
        "--draw",
        draw,
    ]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--property", "oracle"], "missing --implementation (or --target), --dtype, --draw"),
        (["--property", "nope"], "--property nope is not a property"),
        (_repro("print(1)"), "--draw: not a Draw(...) repr"),
        (
            _repro("Draw(encoding='shaw', dims={}, options={}, colour=1)"),
            "Draw has no field 'colour'",
        ),
        (["missing.json"], "missing.json is not a report of relpos check --json"),
    ],
)
def test_explain_says_what_is_wrong_with_its_arguments(argv, said, capsys):
    assert main(["explain", *argv]) == 2
    assert said in capsys.readouterr().err


def test_a_report_row_reads_back_as_the_result_it_was():
    from relpos.equivalence.report import result_from_row, result_row
    from relpos.equivalence.runner import run_property
    from relpos.impls import get

    result = run_property("oracle", get("alibi", "torch", "fast"), "float32", profile="ci")
    again = result_from_row(json.loads(json.dumps(result_row(result))))
    assert replace(again, seconds=result.seconds) == result  # seconds: rounded to 1 ms
    assert again.worst_draw == result.worst_draw is not None
    assert again.coverage.to_json() == result.coverage.to_json()


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="no headless browser: Debian's chromium package is not installed",
)
def test_the_page_renders_in_a_browser(sign_report, tmp_path):
    """Headless Chromium draws the page: the screenshot is not blank, and holds the red of the
    failed cells and the pictures' colours."""
    from matplotlib.image import imread

    html, _ = sign_report
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1400,2400",
            html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not one colour
    red = (pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 100  # the failed cells and the over-the-bound colour


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_the_plugin_writes_the_page_from_every_process(tmp_path, workers):
    """--relpos-html: the results reach the page from pytest-xdist's workers too."""
    import os
    import sys

    if workers:
        pytest.importorskip("xdist")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    html = tmp_path / "plugin.html"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *workers]
    argv += ["-k", "golden-float64 or oracle-float32"]
    argv += ["--relpos-target", SIGN, "--relpos-encoding", "shaw", "--relpos-html", str(html)]
    ran = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 1 and "2 failed" in ran.stdout, ran.stdout[-2000:]
    assert f"HTML report written to {html}" in ran.stdout
    page = _page(html)
    assert len(page.sections) == 2
    assert all(s["images"] and s["images"][0].startswith(PNG) for s in page.sections)
    assert "Diagnosis" in html.read_text()


def test_the_plugin_refuses_html_without_a_target(tmp_path):
    import sys

    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--relpos-html", "x.html"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 4 and "--relpos-html needs --relpos-target" in ran.stderr


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("error", "the implementation raised"),
        ("crash", "the target crashed its worker process"),
        ("timeout", "the target hung"),
    ],
)
def test_a_check_with_no_values_says_why_it_has_no_pictures(status, said):
    from relpos.equivalence.html_report import pictured, render
    from relpos.equivalence.runner import Result

    draw = Draw("alibi", {"bsz": 1, "n_head": 2, "qlen": 3, "mlen": 0, "d_head": 4}, {})
    result = Result("alibi", "torch", "x", "oracle", "float32", status, 1, draw=draw)
    assert pictured([result]) == []  # never run again
    page = render([result], [], budget="dev", seed=1, subject="a target")
    assert f"No pictures: {said}" in page
    assert 'class="failure"' in page
