"""Forward convolutions on the CPU against the newest PyTorch (oneDNN 3), float32 and bfloat16.

For each problem of the suite (bench/cpu-layers-suite.txt) and each dtype:
  torch:  torch.nn.functional.conv{1,2,3}d / conv_transpose{1,2,3}d on channels-last tensors,
          torch.set_num_threads(T) (oneDNN; AMX or AVX512-BF16 for bfloat16 where the CPU has them);
  convnd: convnd.torch's functions of the same names on the same tensors: a user's call from
          Python, overhead included;
  cli:    with --cli, `convnd bench` on the same problem (C++, no Python), which also names the
          algorithm and ISA the planner chose.
The two Python sides take the median of --reps calls after a warm-up, interleaved in two rounds
(the better round counts). Each answer is first compared with torch's float64 result.
Prints one JSON line per measurement and writes a markdown table (ratio = torch ms / convnd ms).

  python bench/cpu_layers.py --threads 2 --cli build/convnd --out bench/results/cpu-vs-torch-<date>.md
bench/cpu_layers.sh sets up the venv and the build.
"""
import argparse, datetime, json, math, os, re, statistics, subprocess, sys, time

import torch
import torch.nn.functional as F

import convnd
import convnd.torch as ct

from grad_cpu import cl as channels_last, machine, onednn

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def parse(problem):
    f = dict(kv.split("=") for kv in problem.split())
    dims = lambda v: [int(t) for t in v.split("x")]
    spatial = dims(f["in"])
    r = len(spatial)
    per = lambda key, d: (dims(f[key]) * r)[:r] if key in f and "x" not in f[key] else (dims(f[key]) if key in f else [d] * r)
    unsupported = set(f) - {"op", "n", "in", "c", "o", "k", "stride", "pad", "dil", "g", "dtype"}
    if unsupported or ":" in f.get("pad", ""):
        raise ValueError(f"{problem}: this benchmark takes no {sorted(unsupported) or 'asymmetric padding'}")
    return {"op": f.get("op", "conv"), "n": int(f.get("n", 1)), "in": spatial, "c": int(f["c"]), "o": int(f["o"]),
            "k": per("k", 1), "stride": per("stride", 1), "pad": per("pad", 0), "dil": per("dil", 1),
            "g": int(f.get("g", 1))}


def median_ms(fn, reps):
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    # Calls of seconds (PyTorch's bfloat16 without AMX or AVX512-BF16) get fewer repetitions.
    ts = []
    for _ in range(max(3, min(reps, int(3.0 / max(first, 1e-9))))):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def flops(p, y):
    """Multiply-adds x 2 of the problem (a transposed conv: per input element and kernel tap)."""
    taps = math.prod(p["k"])
    if p["op"] == "convT":
        return 2 * p["n"] * math.prod(p["in"]) * p["c"] * (p["o"] // p["g"]) * taps
    return 2 * y.numel() * (p["c"] // p["g"]) * taps


def cli_bench(cli, problem, threads, reps):
    out = subprocess.run([cli, "bench", problem, "--json", "--threads", str(threads), "--reps", str(reps)],
                         capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{problem}: {out.stderr[-300:]}")


def cli_isa(cli, problem, threads):
    out = subprocess.run([cli, "plan", problem, "--threads", str(threads)], capture_output=True, text=True, timeout=60)
    m = re.search(r"^isa:\s*(\S+)", out.stdout, re.M)
    return m.group(1) if m else "?"


def case(problem, dtype, threads, reps, cli):
    p = parse(problem)
    r = len(p["in"])
    torch.manual_seed(0)
    N, C, O, g = p["n"], p["c"], p["o"], p["g"]
    transposed = p["op"] == "convT"
    x64 = channels_last(torch.randn(N, C, *p["in"], dtype=torch.float64))
    # torch's weight: conv (O, C/g, k...), transposed conv (C, O/g, k...); scaled so that the
    # outputs stay near 1 (bfloat16 keeps 8 bits of them).
    fan = (C // g) * math.prod(p["k"])
    shape = (C, O // g, *p["k"]) if transposed else (O, C // g, *p["k"])
    w64 = channels_last(torch.randn(*shape, dtype=torch.float64) / math.sqrt(fan))
    name = f"conv_transpose{r}d" if transposed else f"conv{r}d"
    kw = dict(stride=p["stride"], padding=p["pad"], dilation=p["dil"], groups=g)
    tf, cf = getattr(F, name), getattr(ct, name)
    x, w = channels_last(x64.to(DTYPES[dtype])), channels_last(w64.to(DTYPES[dtype]))
    ref = tf(x.double(), w.double(), **kw)
    scale = float(ref.abs().max())
    errs = {}
    for side, fn in (("torch", tf), ("convnd", cf)):
        errs[side] = float((fn(x, w, **kw).double() - ref).abs().max()) / max(scale, 1e-30)
    tt, tc = [], []
    for _ in range(2):
        tt.append(median_ms(lambda: tf(x, w, **kw), reps))
        tc.append(median_ms(lambda: cf(x, w, **kw), reps))
    rec = {"problem": problem, "dtype": dtype, "torch_ms": round(min(tt), 3), "convnd_ms": round(min(tc), 3),
           "ratio": round(min(tt) / min(tc), 3), "gflops_convnd": round(flops(p, ref) / min(tc) / 1e6, 1),
           "err_torch": float(f"{errs['torch']:.2e}"), "err_convnd": float(f"{errs['convnd']:.2e}")}
    if cli:
        full = f"{problem} dtype={dtype}"
        b = cli_bench(cli, full, threads, reps)
        rec.update(cli_ms=round(b["median_s"] * 1e3, 3), algorithm=b["algorithm"], isa=cli_isa(cli, full, threads))
    print(json.dumps(rec), flush=True)
    return rec


def suite(path):
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            yield line


def gmean(vs):
    return math.exp(sum(math.log(v) for v in vs) / len(vs)) if vs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu-layers-suite.txt"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--only", default=None, help="a regex: the problems to run")
    ap.add_argument("--cli", default=None, help="also time `convnd bench` with this program (C++, no Python)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--case-timeout", type=float, default=None, metavar="S",
                    help="run each case in a child process stopped after S seconds (a peer call that takes "
                         "minutes cannot be interrupted in-process); such a case is listed as unfinished")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child: one case, its JSON line
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.one:
        case(a.one, a.dtypes, a.threads, a.reps, a.cli)
        return
    recs = []
    for prob in suite(a.suite):
        if a.only and not re.search(a.only, prob):
            continue
        for d in a.dtypes.split(","):
            t0 = time.perf_counter()
            recs.append(case_in_child(a, prob, d) if a.case_timeout else case(prob, d, a.threads, a.reps, a.cli))
            recs[-1]["seconds"] = round(time.perf_counter() - t0, 1)  # the whole case: references too
            # The table so far, after every case: a run stopped by a time limit keeps what it measured.
            write_table(a, recs, done=False)
    print(write_table(a, recs, done=True))


def case_in_child(a, prob, dtype):
    # -X faulthandler: a child that dies on a signal prints its Python stack (on the GPU machine
    # a float32 case once ended with no output at all, its cause unknown).
    cmd = [sys.executable, "-X", "faulthandler", os.path.abspath(__file__), "--one", prob, "--dtypes", dtype, "--threads", str(a.threads),
           "--reps", str(a.reps)] + (["--cli", a.cli] if a.cli else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.case_timeout)
    except subprocess.TimeoutExpired:
        rec = {"problem": prob, "dtype": dtype, "unfinished": f"stopped after {a.case_timeout:g} s"}
        print(json.dumps(rec), flush=True)
        return rec
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            print(line, flush=True)
            return json.loads(line)
    why = f"exit {out.returncode}" if out.returncode >= 0 else f"signal {-out.returncode}"
    tail = (out.stderr or out.stdout)[-200:].replace("\n", " ").replace("|", "/")
    rec = {"problem": prob, "dtype": dtype, "unfinished": f"failed ({why}): {tail}"}
    print(json.dumps(rec), flush=True)
    return rec


def write_table(a, recs, done):
    lines = [f"# CPU forward layers: convnd against PyTorch, {datetime.date.today()}", "",
             f"Machine: {machine()}. {a.threads} threads for both. torch {torch.__version__} ({onednn()}); "
             f"convnd {getattr(convnd, '__version__', '?')} through `convnd.torch` on the same channels-last tensors "
             "(a Python call each side). Median of the calls, the better of two interleaved rounds; ratio = torch ms "
             "/ convnd ms (above 1: convnd is faster). Errors: max |y - y64| / max |y64| against torch's float64 "
             "result on the same inputs." + (" `cli ms`: `convnd bench` (C++) on the same problem." if a.cli else ""),
             "", "| problem | dtype | torch ms | convnd ms | ratio | convnd GFLOP/s | "
             + ("cli ms | algorithm | isa | " if a.cli else "") + "err torch | err convnd |",
             "| --- | --- | --- | --- | --- | --- | " + ("--- | --- | --- | " if a.cli else "") + "--- | --- |"]
    finished = [r for r in recs if "unfinished" not in r]
    for r in recs:
        if "unfinished" in r:
            lines.append(f"| `{r['problem']}` | {r['dtype']} | {r['unfinished']} | | | | " + ("| | | " if a.cli else "")
                         + "| |")
            continue
        cli_cols = f"{r['cli_ms']} | {r['algorithm']} | {r['isa']} | " if a.cli else ""
        lines.append(f"| `{r['problem']}` | {r['dtype']} | {r['torch_ms']} | {r['convnd_ms']} | {r['ratio']} | "
                     f"{r['gflops_convnd']} | {cli_cols}{r['err_torch']} | {r['err_convnd']} |")
    lines.append("")
    for d in a.dtypes.split(","):
        rs = [r for r in finished if r["dtype"] == d]
        if rs:
            low = min(rs, key=lambda r: r["ratio"])
            lines.append(f"- {d}: geometric mean {gmean([r['ratio'] for r in rs]):.3f} over {len(rs)} layers; "
                         f"lowest {low['ratio']:.3f} (`{low['problem']}`).")
    if "f32" in a.dtypes and "bf16" in a.dtypes:
        f32 = {r["problem"]: r["convnd_ms"] for r in finished if r["dtype"] == "f32"}
        own = [f32[r["problem"]] / r["convnd_ms"] for r in finished if r["dtype"] == "bf16" and r["problem"] in f32]
        if own:
            lines.append(f"- convnd bfloat16 against its own float32 (f32 ms / bf16 ms): geometric mean "
                         f"{gmean(own):.3f}, lowest {min(own):.3f}.")
    if not done:
        lines.append(f"- Incomplete: the run stopped after {len(recs)} measurements.")
    lines.append("- Seconds per case (both sides, the float64 references and the CLI included): " +
                 ", ".join(f"{r['seconds']}" for r in recs) + ".")
    text = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.out + ".tmp", a.out)
    return text


if __name__ == "__main__":
    main()
