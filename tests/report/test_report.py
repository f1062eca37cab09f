"""``moelens report``: the page is self-contained, escapes every text, shows what the run has
and marks the rest "not run"; bad input is one line."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from importlib import resources

import pytest
from clitools import assert_user_error, run_cli
from report_fakes import EVIL, EVIL_NAME, make_run

from moelens.report import assets, paper
from moelens.report.build import build
from moelens.report.html import Link, Table, json_script


class _Elements(HTMLParser):
    """Counts elements and collects text, as a browser's parser would see the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str, str | None]] = []
        self.scripts: list[str | None] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag == "script":
            self.scripts.append(dict(attrs).get("type"))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Elements:
    p = _Elements()
    p.feed(page)
    return p


@pytest.fixture(scope="module")
def evil_page(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("evil") / "run", evil=True)
    done = build(root)
    return done, done.path.read_text()


def test_vendored_gridjs_is_the_npm_release_with_its_licence():
    for name, digest in assets.GRIDJS_SHA256.items():
        assert assets.vendored_sha256(name) == digest
    vendor = resources.files("moelens.report").joinpath("vendor", "gridjs")
    assert "MIT License" in vendor.joinpath("LICENSE").read_text()
    source = vendor.joinpath("SOURCE.md").read_text()
    assert assets.GRIDJS_VERSION in source
    assert all(d in source for d in assets.GRIDJS_SHA256.values())
    assert "sourceMappingURL" not in assets.vendored("gridjs.umd.js")


def test_planted_markup_is_text_everywhere(evil_page):
    done, page = evil_page
    parsed = _parse(page)
    # only our own scripts: Grid.js, the report's script, and JSON data blocks that never run
    code = [t for t in parsed.scripts if t != "application/json"]
    assert len(code) == 2, parsed.scripts
    # the only images are our figures; the planted <img onerror> never becomes an element
    assert all((v or "").startswith("data:image/") for t, a, v in parsed.attrs
               if t == "img" and a == "src")
    assert not [a for a in parsed.attrs if a[1].startswith("on")]
    text = "".join(parsed.text)
    assert EVIL_NAME in text  # the model name, shown as text
    assert EVIL in text       # the user concept's name and the notes
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S):
        assert "<" not in block and ">" not in block
        json.loads(block)


def test_page_is_self_contained(evil_page):
    _, page = evil_page
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src &#x27;none&#x27;" in policy and "img-src data:" in policy
    for tag, attr, value in _parse(page).attrs:
        if attr in ("src", "href"):
            assert value is None or value.startswith(("#", "data:")), (tag, attr, value)
    # the script hashes in the policy are those of the inlined scripts
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    for s in scripts:
        import base64

        digest = base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
        assert f"sha256-{digest}" in policy


def test_sections_present_or_not_run(tmp_path):
    root = make_run(tmp_path / "run", with_probe=False, analyses=False)
    done = build(root)
    assert done.sections["training"] and done.sections["comparison"]
    assert not done.sections["probing"] and not done.sections["boardgame"]
    assert not done.sections["autointerp"] and not done.sections["specialization"]
    assert not done.sections["legal"]
    page = done.path.read_text()
    assert re.search(r'id="probing".*?not run', page, re.S)
    # expert cards exist from training loads alone, without probing
    assert done.sections["experts"] and 'class="expert-card"' in page


def test_comparison_joins_each_model_across_analyses(tmp_path):
    done = build(make_run(tmp_path / "run"))
    models = done.shared.models
    assert set(models) == {"dense-gelu", "moex"}
    assert models["moex"]["val_loss"] == 2.0
    assert models["moex"]["paper_row"] == "MoE-X from scratch"
    assert models["moex"]["probe_k1"] == 0.8 and models["dense-gelu"]["probe_k1"] == 0.7
    assert models["dense-gelu"]["paper_row"] == "GELU (GPT-2)"
    # board-state metrics at the middle of the layers scored, main units
    assert models["moex"]["coverage"] == pytest.approx(0.21)
    assert models["dense-gelu"]["coverage"] == pytest.approx(0.11)
    assert models["moex"]["chance_coverage"] == 0.02
    assert models["moex"]["interp_score"] == 0.75 and "interp_score" not in models["dense-gelu"]
    assert models["moex"]["legal_move_rate"] == 0.5 and models["dense-gelu"]["legal_move_rate"] == 0.4
    # each expert's best concepts come from the tidy table, best first
    card = done.shared.experts[("moex", 1, 2)]
    assert card.concepts and card.concepts == sorted(card.concepts, key=lambda c: -c[1])
    # the load measured on the captured tokens replaces the training batches' load
    assert card.load == pytest.approx(0.25)
    assert card.facts["load measured on"] == "the captured tokens"
    assert card.label == "castling moves" and card.windows[0]["tokens"][6] == "O-O"
    assert card.scores["detection balanced accuracy"] == pytest.approx(0.72)
    assert card.scores["input specialization K=10"] == pytest.approx(0.09)
    assert sum(card.histogram["counts"]) == 8  # the positive activations of both windows


def test_every_model_gets_the_same_auto_interp_metric(tmp_path):
    root = make_run(tmp_path / "run")
    both = {"scorer": "binary", "metric": "f1", "units": 8, "mean": 0.6}
    path = root / "interpret" / "moex" / "summary.json"
    summ = json.loads(path.read_text())
    summ["table"].append(both)
    path.write_text(json.dumps(summ))
    other = root / "interpret" / "switch"
    (other / "units").mkdir(parents=True)
    (other / "config.json").write_text(json.dumps({"config": {"store": "capture/switch"}}))
    (other / "summary.json").write_text(json.dumps({"units": 8, "table": [
        {"scorer": "detection", "metric": "balanced_accuracy", "units": 0, "mean": None},
        {**both, "mean": 0.4}]}))
    models = build(root).shared.models
    # switch has no detection score, so both models are compared on binary F1
    assert (models["moex"]["interp_score"], models["switch"]["interp_score"]) == (0.6, 0.4)
    assert models["moex"]["interp_metric"] == "binary f1"


def test_paper_rows_follow_the_architecture_and_the_recipe():
    moex = {"ffn": "moe", "expert_act": "relu", "router": "sparsity"}
    assert paper.paper_numbers(paper.paper_row(moex)) == (None, 0.398, 0.657)
    assert paper.paper_numbers(paper.paper_row(moex, initialised=True)) == (0.211, 0.428, 0.840)
    relu_softmax = {"ffn": "moe", "expert_act": "relu", "router": "softmax"}
    assert paper.paper_numbers(paper.paper_row(relu_softmax)) == (None, 0.418, 0.829)
    dense = {"ffn": "dense", "ffn_act": "gelu"}
    assert paper.paper_row(dense) == "GELU (GPT-2)"
    assert paper.paper_numbers(paper.paper_row(dense, True)) == (None, 0.377, 0.674)
    assert paper.paper_row({"ffn": "dense", "ffn_act": "swiglu"}) is None


def test_tables_link_experts_to_their_cards():
    t = Table("t", ["unit"], [[Link("layer 1 expert 2", "#expert-m-l1-e2")]])
    assert '<a href="#expert-m-l1-e2">layer 1 expert 2</a>' in t.render()
    assert json.loads(json_script(t.spec()))["rows"][0][0]["href"] == "#expert-m-l1-e2"


def test_json_script_cannot_close_its_element():
    text = json_script({"a": "</script><!-- \u2028 &"})
    assert "</" not in text and "<!--" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- \u2028 &"}


def test_bad_input_is_one_line(tmp_path):
    assert_user_error(run_cli("report", tmp_path / "missing"), "not a directory")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_cli("report", tmp_path / "empty"), "no results")
    assert not (tmp_path / "empty" / "report.html").exists()
    assert_user_error(run_cli("report", tmp_path / "empty", "--out", tmp_path), "is a directory")
    assert_user_error(run_cli("report"), "run directory")
