"""Domain-labelled corpus files: a JSON Lines record is one document even when its text holds
the Unicode line separators that ``str.splitlines`` cuts at (Python source files do)."""

from __future__ import annotations

import json

from moelens.data.domains import read_labelled


def test_jsonl_record_with_unicode_line_separators_is_one_document(tmp_path):
    texts = ["plain prose", "code with \u2029 and \u2028 and \x85 inside", "last"]
    path = tmp_path / "code.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts) + "\r\n",
                    encoding="utf-8")
    docs = read_labelled([path])
    assert [d.text for d in docs] == texts and {d.domain for d in docs} == {"code"}
