"""Performance benchmark: our MV, DS, one-coin DS and GLAD against crowd-kit's and peerannot's.

``python -m benchmarks.bench`` (``make bench``) generates every case once (seeded, with
confusion-matrix workers and spammers from :mod:`crowd.simulation.confusion`), then runs each
implementation on the SAME answers in its own process: ours with this interpreter,
the peers with ``.venv-bench/bin/python`` (crowd-kit 1.4.2 and peerannot live there so
they never touch the project's environment). Each run is capped in wall time and in
resident memory and is reported as "did not finish (time cap)" / "(memory cap)" past
the cap instead of hanging.

Iterative methods run a FIXED number of EM iterations (``tol`` disabled everywhere), so
times and accuracies compare equal work; ``ours_ds_conv`` / ``ours_glad_conv`` also run
ours to convergence (tol 1e-6 per answer, at most 100 iterations).

A roofline-style reference is measured in the same run: one numpy pass over arrays of
the size of one EM iteration's data (gather of n_answers x K log-probabilities, then a
sorted scatter-add over tasks), and the machine's copy bandwidth.

Outputs: ``results/bench.csv`` (one row per case x implementation), ``results/bench.md``
(times, ratios ours/peer, accuracies), ``figures/bench_scaling.png`` (log-log time vs
answers); ``--reference`` also writes the committed ``results/bench_full.csv``.
``python -m benchmarks.bench --quick`` runs a seconds-long variant (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from crowd import paths
from crowd.simulation.confusion import simulate_crowd

__all__ = ["Case", "CASES", "QUICK_CASES", "run_benchmark", "roofline_reference", "markdown_table", "main"]

CHILD = Path(__file__).with_name("_bench_child.py")
DEFAULT_PEER_PYTHON = paths.PROJECT_ROOT / ".venv-bench" / "bin" / "python"


@dataclass(frozen=True)
class Case:
    """A generated crowd: n_tasks x n_workers x n_classes, answers_per_task distinct workers per task."""

    name: str
    n_tasks: int
    n_workers: int
    n_classes: int
    answers_per_task: int | tuple[int, int]
    n_iter: int = 10  # EM iterations for every iterative implementation
    spammer_share: float = 0.1
    seed: int = 0
    peers: bool = True  # run crowd-kit / peerannot on this case

    def generate(self) -> Any:
        return simulate_crowd(self.n_tasks, self.n_workers, self.n_classes, self.answers_per_task,
                              spammer_share=self.spammer_share, seed=self.seed, name=self.name)


# in increasing size: an implementation that does not finish a case is not tried on the larger ones
CASES = (
    # 5 iterations here: peerannot's dense DS takes ~20 s per iteration at this size
    Case("80k", 20_000, 2000, 5, 4, n_iter=5),
    # CIFAR-10H's shape: 10000 images, 2571 annotators, 10 classes, ~50 answers per image
    Case("cifar10h_like", 10_000, 2571, 10, (45, 55)),
    Case("1M", 200_000, 5000, 5, 5),
    Case("10M", 2_000_000, 50_000, 5, 5),
)
QUICK_CASES = (Case("quick_10k", 2000, 100, 4, 5, n_iter=10),)

OURS = ("ours_mv", "ours_ds", "ours_ds_torch", "ours_ds_conv", "ours_onecoin", "ours_glad", "ours_glad_torch",
        "ours_glad_conv")
PEERS = ("crowdkit_mv", "crowdkit_ds", "crowdkit_onecoin", "crowdkit_glad", "peerannot_mv", "peerannot_ds",
         "peerannot_glad")
QUICK_IMPLS = ("ours_mv", "ours_ds", "ours_ds_torch", "ours_onecoin", "ours_glad", "crowdkit_mv", "crowdkit_ds",
               "crowdkit_onecoin")
METHOD = {"mv": "MV", "ds": "DS", "ds_torch": "DS", "ds_conv": "DS (to convergence)", "onecoin": "one-coin DS",
          "glad": "GLAD", "glad_torch": "GLAD", "glad_conv": "GLAD (to convergence)"}


def _library(impl: str) -> str:
    return impl.split("_", 1)[0]


def _method(impl: str) -> str:
    return METHOD[impl.split("_", 1)[1]]


# ------------------------------------------------------------------ reference
def roofline_reference(task: np.ndarray, worker: np.ndarray, label: np.ndarray, n_workers: int, n_classes: int,
                       repeats: int = 3) -> dict[str, float]:
    """Time of one plain numpy pass over one EM iteration's data, and the copy bandwidth.

    The pass gathers one row of K float64 per answer from a (n_workers*K, K) table and
    scatter-adds the rows over tasks (answers sorted by task, ``np.add.reduceat``): the
    memory traffic of an E-step, with no arithmetic beyond the additions.
    """
    order = np.argsort(task, kind="stable")
    col = (worker * n_classes + label)[order]
    starts = np.flatnonzero(np.r_[True, np.diff(task[order]) != 0])
    table = np.random.default_rng(0).random((n_workers * n_classes, n_classes))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = table[col]
        np.add.reduceat(rows, starts, axis=0)
        best = min(best, time.perf_counter() - t0)
    src = np.ones(len(task) * n_classes)
    dst = np.empty_like(src)
    copy = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copy = min(copy, time.perf_counter() - t0)
    return {"ref_pass_s": best, "copy_bandwidth_gbs": 2 * src.nbytes / copy / 1e9}


# -------------------------------------------------------------------- running
def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Linux /proc), in MB."""
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for p in [str(pid), *children]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024.0
        except OSError:
            pass
    return total


def run_one(impl: str, data_path: Path, n_iter: int, *, python: str, timeout_s: float, mem_cap_mb: float,
            workdir: Path) -> dict[str, Any]:
    """Run one implementation in a child process with a time and memory cap; never raises for the child's failures."""
    out = workdir / f"{impl}.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONWARNINGS="ignore", TQDM_DISABLE="1")
    # -P: do not put the script's folder (crowd/) on sys.path, where data.py would shadow other modules
    cmd = [python, "-P", str(CHILD), impl, str(data_path), str(out), str(n_iter)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    peak, status = 0.0, None
    while proc.poll() is None:
        peak = max(peak, _rss_mb(proc.pid))
        elapsed = time.perf_counter() - start
        if peak > mem_cap_mb:
            status = f"did not finish (memory cap {mem_cap_mb / 1024:.0f} GB)"
        elif elapsed > timeout_s:
            status = f"did not finish (time cap {timeout_s:.0f} s)"
        if status:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    if status is None and proc.returncode == 0 and out.exists():
        result = json.loads(out.read_text())
        result["peak_rss_mb"] = max(result.get("peak_rss_mb", 0.0), peak)
        return result
    if status is None:
        last = (stderr or stdout or "").strip().splitlines()[-1:] or ["no output"]
        if "MemoryError" in last[0] or "Unable to allocate" in last[0]:
            # the peer asked for more memory than the machine has: it cannot finish at this size
            need = last[0].split("allocate ")[1].split(" for")[0] if "allocate " in last[0] else "too much"
            status = f"did not finish (memory cap: would allocate {need})"
        else:
            status = f"error: {last[0][:200]}"
    return {"impl": impl, "status": status, "peak_rss_mb": peak, "wall_s": np.nan,
            "stopped_after_s": time.perf_counter() - start}


def run_benchmark(cases: Sequence[Case] = CASES, impls: Sequence[str] = OURS + PEERS, *,
                  peer_python: str | os.PathLike | None = None, timeout_s: float = 300.0, mem_cap_gb: float = 8.0,
                  progress: bool = True) -> pd.DataFrame:
    """Run every implementation on every case; returns one row per (case, implementation).

    Peers are skipped (status "skipped: ...") when ``peer_python`` does not exist or the
    case has ``peers=False``.
    """
    peer_python = Path(peer_python) if peer_python else DEFAULT_PEER_PYTHON
    have_peers = peer_python.exists()
    rows: list[dict[str, Any]] = []
    gave_up: dict[str, str] = {}  # implementation -> case it did not finish
    with tempfile.TemporaryDirectory(prefix="crowd-bench-") as tmp:
        workdir = Path(tmp)
        for case in cases:
            t0 = time.perf_counter()
            data = case.generate()
            gen_s = time.perf_counter() - t0
            data_path = workdir / f"{case.name}.npz"
            np.savez(data_path, task=data.task, worker=data.worker, label=data.label, gold=data.gold,
                     n_tasks=data.n_tasks, n_workers=data.n_workers, n_classes=data.n_classes)
            ref = roofline_reference(data.task, data.worker, data.label, data.n_workers, data.n_classes)
            base = {"case": case.name, "n_answers": data.n_answers, "n_tasks": data.n_tasks,
                    "n_workers": data.n_workers, "n_classes": data.n_classes, "n_iter_setting": case.n_iter,
                    "generate_s": gen_s, **ref}
            if progress:
                print(f"[bench] {case.name}: {data.n_answers} answers generated in {gen_s:.1f} s; "
                      f"reference pass {ref['ref_pass_s'] * 1e3:.1f} ms, copy {ref['copy_bandwidth_gbs']:.1f} GB/s",
                      flush=True)
            del data
            for impl in impls:
                row = {**base, "impl": impl, "library": _library(impl), "method": _method(impl)}
                if impl.startswith("ours"):
                    python = sys.executable
                elif not have_peers:
                    rows.append({**row, "status": f"skipped: no {peer_python}"})
                    continue
                elif not case.peers:
                    rows.append({**row, "status": "skipped: ours only on this case"})
                    continue
                else:
                    python = str(peer_python)
                if impl in gave_up:
                    rows.append({**row, "status": f"did not finish (not tried: did not finish {gave_up[impl]})"})
                    if progress:
                        print(f"[bench]   {impl:18s} not tried (did not finish {gave_up[impl]})", flush=True)
                    continue
                result = run_one(impl, data_path, case.n_iter, python=python, timeout_s=timeout_s,
                                 mem_cap_mb=mem_cap_gb * 1024, workdir=workdir)
                result.pop("impl", None)
                rows.append({**row, **result})
                if str(result["status"]).startswith("did not finish"):
                    gave_up[impl] = case.name
                if progress:
                    r = rows[-1]
                    detail = (f"{r['wall_s']:.2f} s, acc {r['accuracy']:.4f}, {r['peak_rss_mb']:.0f} MB"
                              if r["status"] == "ok" else r["status"])
                    print(f"[bench]   {impl:18s} {detail}", flush=True)
    df = pd.DataFrame(rows)
    if "per_iter_s" in df:
        df["per_iter_over_ref"] = df["per_iter_s"] / df["ref_pass_s"]
    return df


# -------------------------------------------------------------------- reports
def markdown_table(df: pd.DataFrame) -> str:
    """Per case and method: time and accuracy of ours, crowd-kit and peerannot, and the speed-up ours/peer."""
    lines = ["DNF = did not finish within the cap (or not tried after failing a smaller case); "
             "> Nx = at least N times faster (the peer's cap over our time).", "",
             "| case | answers | method | iters | ours (s) | crowd-kit (s) | speed-up vs crowd-kit | peerannot (s) "
             "| speed-up vs peerannot | acc ours | acc crowd-kit | acc peerannot | peak MB ours |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(sub: pd.DataFrame, lib: str, field: str) -> Any:
        hit = sub[sub["library"] == lib]
        if hit.empty:
            return None
        r = hit.iloc[0]
        if r["status"] != "ok":
            return r["status"]
        return r[field]

    def fmt(v: Any, digits: int = 2) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if isinstance(v, str):  # compact statuses: DNF = did not finish
            if "not tried" in v:
                return "DNF (smaller case)"
            if "cap" in v:
                return "DNF (" + v.split("(")[1].split(")")[0] + ")"
            return v
        return f"{v:.{digits}f}"

    for case, sub_case in df.groupby("case", sort=False):
        for method in ("MV", "DS", "one-coin DS", "GLAD"):
            sub = sub_case[(sub_case["method"] == method) & ~sub_case["impl"].str.endswith("_torch")]
            if sub.empty:
                continue
            ours_t, ck_t, pa_t = cell(sub, "ours", "wall_s"), cell(sub, "crowdkit", "wall_s"), cell(sub, "peerannot", "wall_s")

            def ratio(peer: Any) -> str:
                if isinstance(ours_t, float) and isinstance(peer, float):
                    return f"{peer / ours_t:.0f}x" if peer / ours_t >= 10 else f"{peer / ours_t:.1f}x"
                if isinstance(ours_t, float) and isinstance(peer, str) and "time cap" in peer:
                    cap = float(peer.split("time cap ")[1].split(" ")[0])
                    return f"> {cap / ours_t:.0f}x"
                if isinstance(ours_t, float) and isinstance(peer, str) and peer.startswith("did not finish"):
                    return "> cap"
                return "-"

            iters = sub["n_iter_setting"].iloc[0] if method != "MV" else ""
            lines.append(
                f"| {case} | {int(sub['n_answers'].iloc[0])} | {method} | {iters} | {fmt(ours_t)} | {fmt(ck_t)} | "
                f"{ratio(ck_t)} | {fmt(pa_t)} | {ratio(pa_t)} | {fmt(cell(sub, 'ours', 'accuracy'), 4)} | "
                f"{fmt(cell(sub, 'crowdkit', 'accuracy'), 4)} | {fmt(cell(sub, 'peerannot', 'accuracy'), 4)} | "
                f"{fmt(cell(sub, 'ours', 'peak_rss_mb'), 0)} |")
    extra = df[df["impl"].isin(["ours_ds", "ours_ds_torch", "ours_ds_conv", "ours_glad_torch", "ours_glad_conv"])
               & (df["status"] == "ok")]
    if not extra.empty:
        lines += ["", "| case | implementation | time (s) | EM iterations | accuracy | peak MB | per-iteration (ms) "
                  "| per-iteration / reference pass |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for _, r in extra.iterrows():
            per = r.get("per_iter_s", np.nan)
            lines.append(f"| {r['case']} | {r['impl']} | {r['wall_s']:.2f} | {r['n_iter']} | {r['accuracy']:.4f} | "
                         f"{r['peak_rss_mb']:.0f} | {fmt(per * 1e3 if per == per else None, 1)} | "
                         f"{fmt(r.get('per_iter_over_ref', np.nan), 1)} |")
    return "\n".join(lines) + "\n"


def scaling_figure(df: pd.DataFrame) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = plt.get_cmap("tab20").colors
    styles = {"ours": ("-", "o"), "crowdkit": ("--", "s"), "peerannot": (":", "^")}
    for n, (impl, sub) in enumerate(df.groupby("impl", sort=False)):
        ok = sub[sub["status"] == "ok"].sort_values("n_answers")
        dnf = sub[sub["status"].astype(str).str.contains(" cap ")]
        linestyle, marker = styles[_library(impl)]
        color = colors[n % len(colors)]
        if not ok.empty:
            ax.plot(ok["n_answers"], ok["wall_s"], linestyle=linestyle, marker=marker, color=color, label=impl)
        if not dnf.empty:
            ax.scatter(dnf["n_answers"], dnf["stopped_after_s"], marker="x", s=70, color=color,
                       label=None if not ok.empty else f"{impl} (stopped at cap)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of answers")
    ax.set_ylabel("fit time (s); EM iterations fixed per case except *_conv")
    ax.set_title("Truth inference: time vs size (x = stopped at the time or memory cap)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def write_outputs(df: pd.DataFrame, *, stem: str = "bench", figure: bool = True, reference: bool = False) -> dict[str, Path]:
    paths.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    written = {"csv": paths.RESULTS_DIR / f"{stem}.csv", "md": paths.RESULTS_DIR / f"{stem}.md"}
    df.to_csv(written["csv"], index=False)
    written["md"].write_text(markdown_table(df))
    if reference:
        written["reference"] = paths.RESULTS_DIR / f"{stem}_full.csv"
        shutil.copyfile(written["csv"], written["reference"])
    if figure:
        from crowd.reporting.figures import save_figure

        fig = scaling_figure(df)
        written["figure"] = save_figure(fig, f"{stem}_scaling")[0]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long variant (one 10k-answer case)")
    parser.add_argument("--cases", help="comma-separated case names (default: all of the mode)")
    parser.add_argument("--impls", help="comma-separated implementations (default: all of the mode)")
    parser.add_argument("--peer-python", default=str(DEFAULT_PEER_PYTHON), help="interpreter with crowd-kit and peerannot")
    parser.add_argument("--timeout", type=float, default=300.0, help="wall-time cap per run, seconds")
    parser.add_argument("--mem-gb", type=float, default=8.0, help="resident-memory cap per run, GB")
    parser.add_argument("--reference", action="store_true", help="also write results/bench_full.csv (committed)")
    args = parser.parse_args(argv)

    cases = QUICK_CASES if args.quick else CASES
    if args.cases:
        wanted = args.cases.split(",")
        known = {c.name: c for c in CASES + QUICK_CASES}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; known: {sorted(known)}")
        cases = tuple(known[w] for w in wanted)
    impls = QUICK_IMPLS if args.quick else OURS + PEERS
    if args.impls:
        impls = tuple(args.impls.split(","))
        unknown = [i for i in impls if i not in OURS + PEERS]
        if unknown:
            parser.error(f"unknown implementation(s) {unknown}; known: {OURS + PEERS}")
    df = run_benchmark(cases, impls, peer_python=args.peer_python, timeout_s=args.timeout, mem_cap_gb=args.mem_gb)
    written = write_outputs(df, stem="bench_quick" if args.quick else "bench", reference=args.reference and not args.quick)
    print(markdown_table(df))
    for what, path in written.items():
        print(f"[bench] wrote {what}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
