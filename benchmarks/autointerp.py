"""Auto-interpretation throughput: concurrent LLM requests, and the offline rules path.

Builds a synthetic store (one dense layer of 200 units, each firing on its own word), starts the
test suite's local OpenAI-compatible server with 50 ms of latency per request (in a process of its
own, as a real endpoint would be), and runs the whole
``moelens interpret`` pipeline (store reading, windows, explainer, detection scorer, unit files)
on the 200 units at ``--llm.concurrency`` 16 and 1 in the same process (per unit: one explainer
request and 20 test windows judged in batches of 5, so 5 requests), then once more with the rules
explainer and judge (no LLM). Prints::

    llm_concurrency_speedup: <time at concurrency 1 / time at concurrency 16>   (bar 8, goal 14)
    rules_units_per_second: <units explained and scored per second, rules explainer and judge>

Run: ``python benchmarks/autointerp.py [--units 200] [--latency 0.05]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "autointerp"))  # the local chat server of the tests

from moelens.analysis.autointerp.command import InterpretConfig, LLMBackend  # noqa: E402
from moelens.analysis.autointerp.run import interpret  # noqa: E402
from moelens.capture import store_job  # noqa: E402
from moelens.capture.windows import ShardPlan, Window  # noqa: E402
from moelens.store.writer import LayerPlan, ShardWriter  # noqa: E402


def build_store(root: Path, units: int, n_docs: int = 400, ctx: int = 96, seed: int = 0) -> None:
    """A dense layer of ``units`` neurons; neuron i fires (0.5..1) on the word ``w{i}``."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(units)] + [f"f{i}" for i in range(400)]
    docs = [[vocab[j] for j in rng.integers(0, len(vocab), ctx)] for _ in range(n_docs)]
    n = n_docs * ctx
    ids = np.array([vocab.index(w) for d in docs for w in d], dtype=np.int64)
    acts = np.zeros((n, units), dtype=np.float32)
    hit = ids < units
    acts[np.flatnonzero(hit), ids[hit]] = rng.uniform(0.5, 1.0, int(hit.sum()))
    plan = LayerPlan(0, "dense", ["ffn"], {"ffn": units})
    windows = []
    for i, d in enumerate(docs):
        starts = np.cumsum([0] + [len(w) + 1 for w in d[:-1]])
        windows.append(Window(doc=i, ids=ids[i * ctx:(i + 1) * ctx],
                              offsets=np.stack([starts, starts + [len(w) for w in d]], axis=1)))
    settings = {"dtype": "fp32", "benchmark": seed, "layers": [plan.to_json()]}
    store_job.prepare(root, settings, overwrite=False)
    shard = ShardPlan(0, 0, n, windows)
    w = ShardWriter(root, 0, 0, n, [plan], "fp32")
    tok = np.arange(n)
    off = np.concatenate([x.offsets for x in windows])
    w.add_tokens(tok, np.stack([ids, tok // ctx, tok % ctx, off[:, 0], off[:, 1]], axis=1))
    w.add_dense(0, "ffn", tok, acts)
    w.finish()
    log = store_job.DocumentLog()
    log.open(root)
    for i, d in enumerate(docs):
        log.add(i, " ".join(d), used=True)
    store_job.finalize(root, [(shard.index, shard.start, shard.stop)], log, [plan], settings,
                       {"model": {"id": "benchmark"}})


def config(store: Path, out: Path, **kw) -> InterpretConfig:
    return InterpretConfig(store=store, out=out, level="neuron", space="ffn", n_explain=10, n_test=10,
                           n_negative=10, min_examples=20, negatives=["random"], scorers=["detection"],
                           figures=False, quiet=True, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_store(tmp / "store", args.units)
        times = {}
        server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "autointerp" / "ai_chat_server.py"),
                                   "--latency", str(args.latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            url = server.stdout.readline().strip()
            for conc in (16, 1):
                llm = LLMBackend(base_url=url, model="bench", concurrency=conc)
                t0, c0 = time.perf_counter(), time.process_time()
                res = interpret(config(tmp / "store", tmp / f"llm{conc}", explainer="llm", llm=llm))
                times[conc] = time.perf_counter() - t0
                cpu = time.process_time() - c0
                assert res.n_units == args.units and res.n_skipped == 0
                usage = res.summary["usage"]
                assert usage["failures"] == 0 and usage["cached"] == 0
                print(f"llm_concurrency_{conc}_seconds: {times[conc]:.2f}  ({usage['requests']} requests, "
                      f"{cpu:.2f} s of CPU in this process)")
        finally:
            server.stdin.close()
            server.wait(timeout=30)
        t0 = time.perf_counter()
        res = interpret(config(tmp / "store", tmp / "rules", explainer="rules"))
        rules = time.perf_counter() - t0
        assert res.n_units == args.units
    print(f"llm_concurrency_speedup: {times[1] / times[16]:.2f}")
    print(f"rules_units_per_second: {args.units / rules:.1f}")


if __name__ == "__main__":
    main()
