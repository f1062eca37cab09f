"""The Expert Strikes Back's probing protocol at OLMoE-1B-7B's scale, on CPU.

A synthetic store of OLMoE-1B-7B's shape (:mod:`moelens.capture.synthetic`): 4 of its 16 MoE
layers, 64 experts of width 1024, top-8, its residual stream (2048) as the dense baseline space,
50k tokens of 58 planted concepts, fp16. ``moelens probe`` then runs the full default protocol on
it: 58 concepts x 7 values of k, every expert, the default controls (validation-selected test
F1, shuffled-label null, routed-token and size-matched dense baselines) and the seeds (one, 42; ``--seeds 42 43 44`` for moelens's default three, which cost three times
as much), under ``torchrun --nproc_per_node P`` (default 2: one process per core; the fitter
uses one thread per process by design).

Prints ``probing_scale_seconds`` (the probe's wall time), ``probing_scale_full_model_minutes``
(x 16 / 4 layers: every layer costs the same; the per-store concept labelling is counted 4 times,
so this errs high), the same from the processes' CPU time on dedicated cores (on a shared machine
the wall time includes waiting for the CPU), ``probing_scale_peak_rss_mb`` (the largest process)
and, as the baseline run
in this process, the paper's own fitter (scikit-learn saga, 500 iterations) on a random sample of
the same units, extrapolated to all of them: ``probing_scale_speedup_vs_saga``. The paper reports
2-12 GPU-hours of probing per model.

    python benchmarks/probing_scale.py [--procs 2] [--seeds 42] [--dir DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from moelens.capture import synthetic  # noqa: E402

OLMOE_LAYERS, CONCEPTS = 16, 58
KS = (1, 2, 4, 8, 16, 32, 64)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_store(root: Path, reuse: bool, layers: int, tokens: int) -> list[str]:
    spec_file = root.parent / f"{root.name}.concepts.json"
    if reuse and (root / "manifest.json").exists() and spec_file.exists():
        print(f"# reusing {root}", flush=True)
        return json.loads(spec_file.read_text())
    t0 = time.perf_counter()
    syn = synthetic.write(root, n_tokens=tokens, layers=list(range(layers)), num_experts=64, top_k=8,
                          width=1024, hidden=2048, n_concepts=CONCEPTS, shard_tokens=4096)
    print(f"# store: {syn.bytes / 1e9:.2f} GB written in {time.perf_counter() - t0:.0f} s "
          f"({syn.write_seconds:.0f} s in the writer)", flush=True)
    spec_file.write_text(json.dumps(syn.concepts))
    return syn.concepts


def saga_baseline(root: Path, concepts: list[str], sample_units: int, seed: int = 0) -> tuple[float, int]:
    """Seconds per unit (all 7 ks) of the paper's saga fitter on a random sample of layer 0's
    units, and the number of units one seed of the protocol fits per layer."""
    from moelens.analysis.probing import concepts as glue
    from moelens.analysis.probing import fit_reference, work
    from moelens.store import ActivationStore

    store = ActivationStore.open(root)
    chosen = glue.resolve(concepts)
    labels = glue.Labels(store)
    samples = [glue.sample(store, c, 5000, 42, labels=labels) for c in chosen]
    cfg = SimpleNamespace(spaces=["expert", "shared", "ffn"], semantics="routed", baseline_space="auto",
                          baselines=True, null=True, ks=list(KS), min_samples=50)
    prober = work.Prober(store, cfg, lambda s: samples, "m", "saga", "cpu")
    prepared = [p for p in prober.units(work.Item(42, 0, 0, 8)) if p.status == "ok"]
    units_per_layer = len(prepared) * 64 // 8
    pick = np.random.default_rng(seed).choice(len(prepared), min(sample_units, len(prepared)), replace=False)
    t0 = time.perf_counter()
    fit_reference.fit_counts([prepared[i] for i in pick], KS)
    return (time.perf_counter() - t0) / pick.size, units_per_layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--layers", type=int, default=4, help="MoE layers of the store (OLMoE has 16)")
    ap.add_argument("--tokens", type=int, default=50_000)
    ap.add_argument("--saga_units", type=int, default=12, help="units the saga baseline fits (x 7 ks)")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse a store written by an earlier run in --dir")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="moelens-probing-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    root = base / "store"
    try:
        concepts = write_store(root, args.reuse, args.layers, args.tokens)
        LAYERS = args.layers  # noqa: N806
        out = base / "probe"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.procs),
               "--master_port", str(_free_port()), "-m", "moelens", "probe", "--store", str(root),
               "--out", str(out), "--concepts", *concepts, "--seeds", *map(str, args.seeds),
               "--no-figures", "--overwrite"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"probe failed:\n{proc.stderr[-4000:]}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = usage.ru_maxrss / 1024
        cpu_s = usage.ru_utime + usage.ru_stime
        summary = json.loads((out / "summary.json").read_text())
        print("\n".join(l for l in proc.stdout.splitlines() if l.startswith(("probe:", "  "))))
        rows = int(json.loads((out / "DONE").read_text()).get("rows", 0))
        fits = int(summary.get("units_fitted", 0))
        saga_unit_s, units_per_layer = saga_baseline(root, concepts, args.saga_units)
        saga_s = saga_unit_s * units_per_layer * LAYERS * len(args.seeds)
        full_min = seconds * OLMOE_LAYERS / LAYERS / 60
        print(f"# {LAYERS} layers x {len(args.seeds)} seed(s) x {CONCEPTS} concepts x {len(KS)} ks, "
              f"{args.procs} processes: {rows:,} table rows, {fits:,} fits")
        print(f"# saga (paper's fitter): {saga_unit_s:.2f} s per unit (7 ks) on {args.saga_units} sampled "
              f"units -> {saga_s / 3600:.1f} CPU-hours extrapolated to the same {units_per_layer * LAYERS * len(args.seeds):,} units")
        print(f"probing_scale_seconds: {seconds:.0f} (wall, {args.procs} processes)")
        print(f"probing_scale_cpu_seconds: {cpu_s:.0f} (CPU time of the probe processes; on a shared "
              f"machine wall time is longer than CPU time / {args.procs})")
        print(f"probing_scale_full_model_minutes_dedicated_cores: {cpu_s * OLMOE_LAYERS / LAYERS / args.procs / 60:.1f} "
              f"(CPU time / {args.procs} cores, x 16 / {LAYERS} layers)")
        print(f"probing_scale_full_model_minutes: {full_min:.1f} ({len(args.seeds)} seed(s); bar <= 60, goal <= 10; "
              "paper: 2-12 GPU-hours)")
        if len(args.seeds) == 1:
            print(f"probing_scale_full_model_minutes_3_seeds: {3 * full_min:.1f} (x3, extrapolated)")
        print(f"probing_scale_peak_rss_mb: {peak_mb:.0f} (largest process)")
        print(f"probing_scale_speedup_vs_saga: {saga_s / cpu_s:.0f} (CPU time, saga extrapolated)")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
