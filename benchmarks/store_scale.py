"""Store throughput and bounded memory: write, read back and probe one OLMoE layer's store at
50k and 200k tokens.

Shape: one MoE layer of OLMoE-1B-7B (64 experts of width 1024, top-8) plus its residual stream
(2048, the probing baseline space), fp16, written through the capture's shard writer (rows
sorted by expert, sha256, atomic files) by :mod:`moelens.capture.synthetic`. For each size:

- ``store_write_mb_per_s``: shard bytes / time inside the writer (generating the synthetic values
  is not counted);
- ``store_read_mb_per_s``: every expert read back (``ActivationStore.iter_expert``, routed rows,
  fp16 -> float32, sha256 of each file checked on first read) / wall time, in stored bytes;
- ``probe_peak_rss_mb``: peak resident memory of a ``moelens probe`` process on the store
  (8 planted concepts, sample budget 5000, one seed, the default ks and controls).

The two sizes are measured in the same process, one after the other; ``probe_peak_rss_growth``
is the 200k figure over the 50k one (memory must not grow with the store: the probe reads one
expert at a time on the concepts' sampled tokens, whose number does not depend on the store).
Run: ``python benchmarks/store_scale.py [--tokens 50000 200000] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moelens.capture import synthetic  # noqa: E402
from moelens.store import ActivationStore  # noqa: E402

_PROBE_RSS = """
import resource, sys
from moelens import cli
code = cli.main(sys.argv[1:])
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def measure(root: Path, n_tokens: int, concepts: int, threads: int) -> dict[str, float]:
    t0 = time.perf_counter()
    syn = synthetic.write(root, n_tokens=n_tokens, layers=[0], num_experts=64, top_k=8, width=1024,
                          hidden=2048, n_concepts=concepts, shard_tokens=4096)
    total = time.perf_counter() - t0
    store = ActivationStore.open(root)
    expert_bytes = sum(e["bytes"] for r in store.manifest["shards"] for rel, e in r["files"].items()
                       if "/expert/" in rel)
    t0 = time.perf_counter()
    rows = 0
    for e in range(store.num_experts(0)):
        for tok, acts in store.iter_expert(0, e):
            rows += tok.size
    read_s = time.perf_counter() - t0
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE_RSS, "probe", "--store", str(root), "--out",
                           str(root.parent / f"probe-{n_tokens}"), "--concepts", *syn.concepts,
                           "--seeds", "42", "--no-figures", "--bootstrap", "100", "--quiet", "--overwrite"],
                          capture_output=True, text=True, env=env, check=False)
    probe_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"probe failed:\n{proc.stderr[-3000:]}")
    rss_kb = int(proc.stdout.split("peak_rss_kb")[-1].split()[0])
    return {"tokens": n_tokens, "store_mb": syn.bytes / 1e6, "write_s": syn.write_seconds,
            "generate_and_write_s": total, "store_write_mb_per_s": syn.bytes / 1e6 / syn.write_seconds,
            "read_s": read_s, "rows": rows, "store_read_mb_per_s": expert_bytes / 1e6 / read_s,
            "probe_s": probe_s, "probe_peak_rss_mb": rss_kb / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--concepts", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="OMP threads of the probe process")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the stores (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="moelens-store-scale-"))
    results = []
    try:
        for n in args.tokens:
            r = measure(base / f"store-{n}", n, args.concepts, args.threads)
            results.append(r)
            print(f"# {n:,} tokens: store {r['store_mb']:,.0f} MB, written in {r['write_s']:.1f} s "
                  f"(with generation {r['generate_and_write_s']:.1f} s), read back in {r['read_s']:.1f} s "
                  f"({r['rows']:,} rows), probe {r['probe_s']:.1f} s", flush=True)
            print(f"store_write_mb_per_s[{n}]: {r['store_write_mb_per_s']:.0f}")
            print(f"store_read_mb_per_s[{n}]: {r['store_read_mb_per_s']:.0f}")
            print(f"probe_peak_rss_mb[{n}]: {r['probe_peak_rss_mb']:.0f} (store {r['store_mb']:,.0f} MB)")
            if not args.keep:
                shutil.rmtree(base / f"store-{n}", ignore_errors=True)
        if len(results) >= 2:
            growth = results[-1]["probe_peak_rss_mb"] / results[0]["probe_peak_rss_mb"]
            print(f"probe_peak_rss_growth: {growth:.3f} ({results[0]['tokens']:,} -> {results[-1]['tokens']:,} "
                  f"tokens, store x{results[-1]['store_mb'] / results[0]['store_mb']:.1f})")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
