"""Runs the CPU suite with convnd and PyTorch in one run and writes a markdown report.

convnd: `convnd bench --json`, one process per problem so that each peak-memory figure is that
problem's own. PyTorch: the peers script, unchanged, whose cases map to suite lines below.
"""
import argparse, datetime, json, math, os, platform, re, subprocess, sys

# peers_cpu.py case tag -> the suite's problem string it measures.
PEER_CASES = {
    "r50_3x3_c64_56_N8": "n=8 in=56x56 c=64 o=64 k=3x3 pad=1",
    "r50_3x3_c256_14_N8": "n=8 in=14x14 c=256 o=256 k=3x3 pad=1",
    "r50_1x1_c256to64_56_N8": "n=8 in=56x56 c=256 o=64",
    "dw3x3_c384_56_N8": "n=8 in=56x56 c=384 o=384 k=3x3 pad=1 g=384",
    "conv3d_c32_16_N1": "n=1 in=16x16x16 c=32 o=32 k=3x3x3 pad=1",
    "longk_n5160": "op=convT in=5160 c=1 o=1 k=4096 stride=1024",
    "longk_n20k": "op=convT in=20000 c=1 o=1 k=4096 stride=1024",
    "vocoder_up8_N1_L10k": "op=convT in=10000 c=512 o=256 k=16 stride=8",
}
STANDARD = list(PEER_CASES.values())[:5]
LONG_KERNEL = [p for p in PEER_CASES.values() if "k=4096" in p]


def suite_problems(path):
    out = []
    for line in open(path):
        body = line.split("#", 1)[0].strip()
        if body:
            out.append((body, line.split("#", 1)[1].strip() if "#" in line else ""))
    return out


def machine():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) * 1024
    flags = open("/proc/cpuinfo").read()
    isa = "avx512" if "avx512f" in flags else ("avx2" if "avx2" in flags else "baseline")
    return f"{cpu}, {os.cpu_count()} cores, {mem / 2**30:.1f} GiB, {isa}, {platform.system()} {platform.release()}"


def run_peers(peers, log):
    res = {"cases": {}}
    proc = subprocess.run([sys.executable, peers], capture_output=True, text=True, timeout=3600)
    log.write(proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if "case" in d and "peer" not in d:
            res["cases"][PEER_CASES.get(d["case"], d["case"])] = d
        elif "torch_sgemm_GFLOPs" in d:
            res.update(d)
    return res


def run_convnd(binary, problem, reps, log, extra):
    cmd = [binary, "bench", problem, "--json", "--reps", str(reps)] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    log.write(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_convnd(binary, problem, log):
    proc = subprocess.run([binary, "check", problem, "--samples", "4000"], capture_output=True, text=True, timeout=3600)
    log.write(proc.stdout + proc.stderr)
    return "PASS" if proc.returncode == 0 else "FAIL"


def tensor_bytes(problem):
    """x + w + y bytes from the problem string, via `convnd plan --json`'s geometry is not
    exposed; compute here for the 1-D long-kernel lines only (c=o=1, f32)."""
    m = re.search(r"in=(\d+).*k=(\d+) stride=(\d+)", problem)
    L, K, s = map(int, m.groups())
    out = (L - 1) * s + K
    return 4 * (L + K + out)


def copy_gbps():
    """Memory bandwidth ceiling of the roofline plot: the best of 5 numpy copies of 256 MiB, in
    GB/s of bytes read + written (one thread)."""
    import time

    import numpy as np
    src = np.ones(64 << 20, dtype=np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best / 1e9


def torch_version():
    """The peer's PyTorch and oneDNN versions, as the interpreter running this script sees them."""
    code = ("import re, torch; m = re.search(r'(?:oneDNN|MKL-DNN) v([0-9.]+)', torch.__config__.show()); "
            "print(torch.__version__ + (f', oneDNN {m.group(1)}' if m else ''))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "(unknown version)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--convnd", required=True)
    ap.add_argument("--peers", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--skip-large", action="store_true", help="skip the > 2^31-output line")
    args = ap.parse_args()
    log = open(args.out.replace(".md", ".log"), "w")
    problems = suite_problems(args.suite)
    print("running PyTorch peers ...", flush=True)
    peers = run_peers(args.peers, log)
    rows = []
    for prob, note in problems:
        large = prob.startswith("n=1025")
        if large and args.skip_large:
            continue
        print("running convnd:", prob, flush=True)
        r = run_convnd(args.convnd, prob, 3 if large else args.reps, log, [])
        r["check"] = check_convnd(args.convnd, prob, log)
        rows.append((prob, note, r, peers["cases"].get(prob)))

    sgemm = peers.get("numpy_sgemm_GFLOPs", float("nan"))
    lines = [f"# CPU benchmark, {datetime.date.today().isoformat()}", "",
             f"Machine: {machine()}.", "",
             f"convnd and PyTorch {torch_version()} (2 threads, channels-last; "
             "`../shared/bench/peers_cpu.py`) in one run of `bench/cpu.sh`. Times are medians; "
             "ratio = PyTorch time / convnd time. Each convnd problem runs in its own process, so "
             "peak memory is that problem's. `check` runs the problem again against the float64 oracle.", "",
             f"Same-run ceilings: OpenBLAS sgemm (numpy) {sgemm:.1f} GFLOP/s; PyTorch sgemm "
             f"{peers.get('torch_sgemm_GFLOPs', float('nan')):.1f} GFLOP/s; memory copy (numpy, one thread, "
             f"bytes read + written) {copy_gbps():.1f} GB/s.", "",
             "| problem | convnd algorithm | convnd ms | GFLOP/s | GB/s | workspace | peak RSS | check | PyTorch ms | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    ratios = {}
    for prob, note, r, peer in rows:
        if "error" in r:
            lines.append(f"| `{prob}` | error: {r['error']} | | | | | | {r['check']} | | |")
            continue
        ms = r["median_s"] * 1e3
        pms = peer["ms"] if peer else None
        ratio = pms / ms if pms else None
        if ratio:
            ratios[prob] = ratio
        lines.append(f"| `{prob}` | {r['algorithm']} | {ms:.3f} | {r['gflops']:.1f} | {r['gbps']:.2f} | "
                     f"{r['workspace_bytes'] / 2**20:.2f} MiB | {r['peak_rss_bytes'] / 2**20:.0f} MiB | {r['check']} | "
                     f"{'%.2f' % pms if pms else '—'} | {'%.2fx' % ratio if ratio else '—'} |")
    lines += ["", "## Targets", ""]
    std = [ratios[p] for p in STANDARD if p in ratios]
    if std:
        gm = math.exp(sum(map(math.log, std)) / len(std))
        lines.append(f"- Five standard layers, geometric mean of ratios: {gm:.2f}x (target >= 1.0x).")
    dw = STANDARD[3]
    if dw in ratios:
        lines.append(f"- Depthwise: {ratios[dw]:.1f}x (target >= 10x).")
    by_prob = {p: r for p, _, r, _ in rows}
    for p in STANDARD[:3] + [STANDARD[4]]:
        r = by_prob.get(p)
        if r and "gflops" in r:
            lines.append(f"- `{p}`: {r['gflops']:.1f} GFLOP/s = {100 * r['gflops'] / sgemm:.0f}% of same-run OpenBLAS sgemm (target >= 80%).")
    for p in LONG_KERNEL:
        r = by_prob.get(p)
        if r and "median_s" in r:
            limit = 2 * tensor_bytes(p) + 64 * 2**20
            lines.append(f"- `{p}`: {ratios.get(p, float('nan')):.0f}x PyTorch (target >= 100x); peak RSS "
                         f"{r['peak_rss_bytes'] / 2**20:.0f} MiB against the bound 2*(x+w+y)+64 MiB = {limit / 2**20:.0f} MiB.")
    text = "\n".join(lines) + "\n"
    open(args.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
