"""Trigger → target cases written by an LLM from expert labels: an OpenAI-compatible server (a
real local HTTP server with scripted answers) writes them, they are validated as a cases file
is (a missing trigger rejected and counted, an unusable answer a counted failure), and the
trigger test run on them through the ``moelens`` command ranks the planted expert first."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from clitools import assert_user_error, run_cli

from moelens.analysis.autointerp.clients.base import ResponseCache
from moelens.analysis.autointerp.clients.openai_compat import OpenAIClient, OpenAISettings
from moelens.analysis.causal.trigger_cases import Label, generate_cases, parse_answer, validate

from .planted import char_tokenizer, tid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autointerp"))
from ai_chat_server import ChatServer  # noqa: E402

ANSWERS = {
    # the planted expert: three good cases and one whose trigger is not in its text
    3: {"cases": [{"text": "the quick fox", "trigger": "q", "target": "z"},
                  {"text": "quiet quarters", "trigger": "q", "target": "z"},
                  {"text": "no such letter", "trigger": "q", "target": "z"},
                  {"text": "a quilt and a quail", "trigger": "q", "target": "z"}]},
    0: {"cases": [{"text": "a big bad bat", "trigger": "b", "target": "c"},
                  {"text": "the old boat", "trigger": "b", "target": "c"},
                  {"text": "bring the bell", "trigger": "b"}]},  # no target: rejected
}


def answer(payload: dict) -> str:
    user = payload["messages"][-1]["content"]
    for expert, reply in ANSWERS.items():
        if f"expert {expert} of layer 0" in user:
            return "```json\n" + json.dumps(reply) + "\n```"
    return "Sorry, I cannot help with that."  # expert 1: no JSON at all


def _unit(layer, expert, text, status="ok", index=-1):
    space = "expert_out" if index < 0 else "expert"
    name = f"L{layer}.{space}.E{expert}" + (f".N{index}" if index >= 0 else "")
    window = {"start": 0, "kind": "activating", "tokens": list("a quiet"), "acts": [0, 0, 1.0, 0, 0, 0, 0]}
    return name, {"unit": {"name": name, "layer": layer, "space": space, "expert": expert, "index": index},
                  "status": status, "settings": "k", "promoted": ["z"],
                  "examples": {"status": status, "explain": [window] if status == "ok" else []},
                  "explanation": {"text": text} if status == "ok" else None, "scores": {}}


def labels_dir(root: Path) -> Path:
    """An interpret output as docs/interfaces.md describes it: three labelled experts, one expert
    without activating examples and one neuron (not an expert)."""
    (root / "units").mkdir(parents=True)
    (root / "summary.json").write_text(json.dumps({"units": 5, "table": []}))
    for args in ((0, 3, "the letter q"), (0, 0, "the letter b"), (0, 1, "vowels"),
                 (0, 2, None, "no activating examples"), (0, 3, "q again", "ok", 7)):
        name, rec = _unit(*args)
        (root / "units" / f"{name}.json").write_text(json.dumps(rec))
    return root


def test_cases_are_validated_and_failures_counted(tmp_path):
    labels = labels_dir(tmp_path / "labels")
    with ChatServer(responder=answer) as srv:
        client = OpenAIClient(OpenAISettings(srv.base_url, "m", max_retries=0), ResponseCache(tmp_path / "cache"))
        cases, report = generate_cases(labels, client, char_tokenizer(), n_per_expert=4, seed=0)
        prompt = next(p["messages"][-1]["content"] for p, _ in srv.requests if "expert 3 of" in p["messages"][-1]["content"])
    assert srv.count == 3 and "the letter q" in prompt and "a <<q>>uiet" in prompt and "'z'" in prompt
    got = {(c.expert, c.text) for c in cases.cases}
    assert got == {(3, "the quick fox"), (3, "quiet quarters"), (3, "a quilt and a quail"),
                   (0, "a big bad bat"), (0, "the old boat")}
    assert all(c.layer == 0 and c.target in "zc" and c.leading_space for c in cases.cases)
    reasons = {r["id"]: r["reason"] for r in cases.rejected}
    assert "does not occur" in reasons["L0.expert_out.E3.2"] and "target" in reasons["L0.expert_out.E0.2"]
    assert report["rejected"] == 2 and report["failures"] == 1
    assert report["failed_answers"][0]["unit"] == "L0.expert_out.E1"
    assert "Sorry" in report["failed_answers"][0]["raw"]
    assert report["skipped_units"] == {"no activating examples": 1, "not a whole expert": 1}
    assert report["experts"] == 3 and report["cases"] == 5 and report["usage"]["requests"] == 3


def test_generated_cases_through_the_trigger_command(planted_dirs, tmp_path):
    labels = labels_dir(tmp_path / "labels")
    out, test = tmp_path / "cases", tmp_path / "trigger"
    with ChatServer(responder=answer) as srv:
        proc = run_cli("causal", "cases", "--labels", labels, "--model", planted_dirs["trigger"], "--llm.model", "m",
                       "--llm.base_url", srv.base_url, "--llm.max_retries", "0", "--n_cases", "4", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "5 cases for 3 labelled experts (2 rejected, 1 answers unusable" in proc.stdout
    saved = json.loads((out / "cases.json").read_text())["cases"]
    assert len(saved) == 5 and all(tid(c["target"]) for c in saved)
    assert json.loads((out / "report.json").read_text())["failures"] == 1
    proc = run_cli("causal", "trigger", "--model", planted_dirs["trigger"], "--cases", out / "cases.json",
                   "--out", test, "--no-figures")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [r for r in json.loads((test / "summary.json").read_text())["rank_table"]]
    import csv

    with open(test / "trigger.csv") as f:
        wired = [r for r in csv.DictReader(f) if r["expert"] == "3"]
    assert sorted(r["category"] for r in wired if r["kind"] == "matched") == ["rank 1"] * 3
    assert [r["category"] for r in wired if r["kind"] == "control"] == ["not routed"] * 2
    assert {r["kind"] for r in rows} == {"matched", "control"}


def test_labels_that_are_not_an_interpret_output(planted_dirs, tmp_path):
    (tmp_path / "somewhere").mkdir()
    proc = run_cli("causal", "cases", "--labels", tmp_path / "somewhere", "--model", planted_dirs["trigger"],
                   "--llm.model", "m", "--out", tmp_path / "out")
    assert_user_error(proc, "not a 'moelens interpret' output directory", "--out directory")
    assert not (tmp_path / "out").exists()


def test_a_local_model_writes_cases_too(tmp_path):
    """The hf backend goes through the same path; a random tiny model's answers are no JSON, so
    every expert's answer is a counted failure and no case is made up."""
    from ai_helpers import tiny_llama

    from moelens.analysis.autointerp.clients.hf import HFClient

    client = HFClient(str(tiny_llama(tmp_path / "lm")), ResponseCache(tmp_path / "cache"))
    cases, report = generate_cases(labels_dir(tmp_path / "labels"), client, char_tokenizer(), n_per_expert=2,
                                   max_tokens=8)
    assert cases.cases == [] and report["failures"] == 3 and report["usage"]["requests"] == 3
    assert all(f["raw"] is not None for f in report["failed_answers"])


def test_an_answer_is_cut_to_n_cases_and_blank_fields_are_rejected():
    label = Label("L0.expert_out.E3", 0, 3, "the letter q", [], ["z"])
    items = parse_answer(json.dumps([{"text": "   ", "trigger": "q", "target": "z"},
                                     {"text": "the quick fox", "trigger": "q", "target": " z "},
                                     {"text": "quiet quarters", "trigger": "q", "target": "z"}]))
    got = validate(label, items, 2, char_tokenizer())  # the third case is past n
    assert [c.text for c in got.cases] == ["the quick fox"] and got.cases[0].target == "z"
    assert [r["id"] for r in got.rejected] == ["L0.expert_out.E3.0"]
    assert "non-empty text" in got.rejected[0]["reason"]
    assert parse_answer("") is None and parse_answer('{"cases": 3}') is None
