"""Joins one bench/gpu.sh run into a report: convnd's device-resident times (bench/gpu_bench.cu),
PyTorch's on the same problems (bench/peers_gpu.py), convnd's sampled checks, the unit tests, and
the device ceilings measured in the same run. Writes a markdown report and prints a short table.

  python3 bench/compare_gpu.py --suite bench/gpu-suite.txt --bench bench.jsonl --peers peers.jsonl
      --checks checks.jsonl --tests tests.log [--variants variants.jsonl] --out report.md [--out copy.md]
      [--note 'build: ok'] ...

Also checks the issue's targets (geometric mean over the standard bf16 layers, depthwise, the
>2^31 problems, the long transposed conv's share of copy bandwidth, first-call pauses).
"""
import math
import argparse
import datetime
import json
import os
import re


def read_jsonl(path):
    rows = []
    if path and os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    return rows


def suite_entries(path):
    out = []
    with open(path) as fh:
        section = ""
        for line in fh:
            s = line.strip()
            if s.startswith("# --"):
                section = s.strip("# -")
                continue
            text, _, comment = line.partition("#")
            text = text.strip()
            if not text:
                continue
            m = re.search(r"(?:cuDNN|PyTorch)\s+([0-9.]+)\s*ms", comment)
            out.append({"problem": text, "section": section, "recorded_ms": float(m.group(1)) if m else None,
                        "recorded": comment.strip()})
    return out


def test_counts(path):
    if not path or not os.path.exists(path):
        return None
    txt = open(path, errors="replace").read()
    passed = re.findall(r"\[  PASSED  \] (\d+) test", txt)
    failed = re.findall(r"\[  FAILED  \] (\d+) test", txt)
    skipped = re.findall(r"\[  SKIPPED \] (\d+) test", txt)
    failed_names = re.findall(r"\[  FAILED  \] (\S+\.\S+)", txt)
    if not (passed or failed):
        return None
    return {"passed": int(passed[-1]) if passed else 0, "failed": int(failed[-1]) if failed else 0,
            "skipped": int(skipped[-1]) if skipped else 0, "failed_names": sorted(set(failed_names))}


def fmt_ms(v):
    if v is None:
        return "-"
    return "%.3g" % v if v < 100 else "%.0f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--bench")
    ap.add_argument("--peers")
    ap.add_argument("--checks")
    ap.add_argument("--tests")
    ap.add_argument("--variants")
    ap.add_argument("--peers-from", default="", help="the earlier run's peers file, when PyTorch was not re-run")
    ap.add_argument("--peers-fallback", default="",
                    help="an earlier run's peers file (same device kind) for the suite problems that --peers lacks "
                         "or has no time for; each such row says so")
    ap.add_argument("--peers-fallback-name", default="", help="the name to print for --peers-fallback")
    ap.add_argument("--device", default="")
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--out", action="append", default=[])
    a = ap.parse_args()

    suite = suite_entries(a.suite)
    bench = {}
    copy = None
    for r in read_jsonl(a.bench):
        if "copy" in r:
            copy = r["copy"]
        elif "suite" in r:
            bench[r["suite"]] = r.get("result") or {"error": r.get("error", "no result")}
    peers, ceil = {}, None
    for r in read_jsonl(a.peers):
        if r.get("ceilings"):
            ceil = r
        elif "problem" in r:
            peers[r["problem"]] = r
    # Where each problem's PyTorch figure comes from: this run, or the earlier file (and why).
    source = {t: "this run" for t, r in peers.items() if r.get("ms")}
    fb_name = a.peers_fallback_name or a.peers_fallback
    fb_ceil, fb_n, ceil_from_fb = None, 0, False
    if a.peers_fallback:
        fb = {}
        for r in read_jsonl(a.peers_fallback):
            if r.get("ceilings"):
                fb_ceil = r
            elif "problem" in r:
                fb[r["problem"]] = r
        for e in suite_entries(a.suite):
            t = e["problem"]
            if t in source or t not in fb:
                continue
            err = (peers.get(t) or {}).get("error")
            if fb[t].get("ms") or t not in peers:
                peers[t] = dict(fb[t])
                source[t] = "earlier file (%s)" % (("here: " + err[:40]) if err else "not re-run here")
                fb_n += 1
        if ceil is None and fb_ceil:
            ceil, ceil_from_fb = fb_ceil, True
    checks = {}
    lists = {}
    for r in read_jsonl(a.checks):
        if r.get("list") == "suite":
            checks[r["suite"]] = r
        else:
            lists.setdefault(r.get("list", "?"), []).append(r)
    tests = test_counts(a.tests)

    def check_word(r):
        if r is None:
            return "-"
        res = r.get("result") or {}
        if "result" in res:
            return res["result"] + ("" if res["result"] == "PASS" else " (%s)" % res.get("max_err_over_tol", "?"))
        return "ERR " + (r.get("error") or res.get("error") or "?")[:40]

    lines = []
    device = a.device or (ceil or {}).get("device") or next((p.get("device") for p in peers.values() if p.get("device")), "?")
    lines.append("# convnd CUDA backend: GPU run of %s" % datetime.date.today().isoformat())
    lines.append("")
    lines.append("Device: **%s**. PyTorch %s, cuDNN %s." % (
        device, (ceil or {}).get("torch", "?"),
        next((p.get("cudnn") for p in peers.values() if p.get("cudnn")), "?")))
    cb = []
    if copy:
        cb.append("cudaMemcpy device-to-device %.0f GB/s (bytes read + written)" % copy.get("copy_GBps", 0))
    if ceil and not a.peers_from and not ceil_from_fb:
        cb.append("PyTorch copy_ %s GB/s" % ceil.get("torch_copy_GBps", "?"))
        cb.append("GEMM 8192^3 fp32 %s, bf16 %s TFLOP/s" % (ceil.get("gemm_fp32_TFLOPs", "?"), ceil.get("gemm_bf16_TFLOPs", "?")))
    if cb:
        lines.append("Ceilings measured in this run: " + "; ".join(cb) + ".")
    if a.peers_from:
        lines.append("")
        lines.append("PyTorch was not re-run: its times (and its ceilings%s) come from `%s`, measured earlier on %s, "
                     "the same device kind." % (
                         (": copy_ %s GB/s, GEMM fp32 %s, bf16 %s TFLOP/s" % (
                             ceil.get("torch_copy_GBps", "?"), ceil.get("gemm_fp32_TFLOPs", "?"),
                             ceil.get("gemm_bf16_TFLOPs", "?"))) if ceil else "",
                         a.peers_from, (ceil or {}).get("device", "?")))
    if a.peers_fallback and fb_n:
        lines.append("")
        lines.append("PyTorch was re-run in this run for %d suite problems (\"this run\" in the PyTorch source column). "
                     "The figures of the other %d come from `%s`, measured earlier on %s (the same device kind): "
                     "problems whose first call takes minutes, or that failed or timed out here; each row says which." % (
                         sum(1 for v in source.values() if v == "this run"), fb_n, fb_name,
                         (fb_ceil or {}).get("device") or next((p.get("device") for p in peers.values()
                                                                if p.get("device")), "?")))
    lines.append("")
    for n in a.note:
        lines.append("- " + n)
    if tests:
        lines.append("- CUDA unit tests (gtest Cuda*): %d passed, %d failed, %d skipped%s" % (
            tests["passed"], tests["failed"], tests["skipped"],
            (": " + ", ".join(tests["failed_names"])) if tests["failed_names"] else ""))
    for name, rows in sorted(lists.items()):
        ok = sum(1 for r in rows if (r.get("result") or {}).get("result") == "PASS")
        bad = [r.get("suite", "?") for r in rows if (r.get("result") or {}).get("result") != "PASS"]
        lines.append("- list %s: %d of %d PASS%s" % (name, ok, len(rows), ("; not: " + " | ".join(bad[:8])) if bad else ""))
    lines.append("")
    lines.append("convnd times are device-resident (x, w, y in device memory; execute() timed with CUDA events, "
                 "median of 5 after a warm-up). PyTorch: cudnn.benchmark=True, channels_last, TF32 off, median after "
                 "a warm-up (first call timed apart). speedup = PyTorch ms / convnd ms (above 1: convnd is faster).")
    lines.append("")
    lines.append("| problem | convnd algorithm | convnd ms | TFLOP/s | GB/s | PyTorch ms | speedup | PyTorch first call s | PyTorch source | suite's PyTorch (H200) | check | >2^31 tails |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    short = []
    for e in suite:
        t = e["problem"]
        b = bench.get(t) or {}
        p = peers.get(t) or {}
        cms = b.get("median_ms")
        pms = p.get("ms")
        sp = (pms / cms) if (cms and pms) else None
        tails = "-"
        if "tails_pass" in b:
            tails = ("ok" if b["tails_pass"] else "FAIL") + " (%d, %.2g)" % (b.get("tails_checked", 0), b.get("tails_worst_err_over_tol", 0))
        algo = b.get("algorithm") or ("ERR " + str(b.get("error", "not run"))[:60])
        src = source.get(t) or (("this run" if not a.peers_from else "earlier file") if p else "-")
        if a.peers_from and p:
            src = "earlier file"
        lines.append("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            t, algo, fmt_ms(cms), ("%.1f" % b["tflops"]) if "tflops" in b else "-",
            ("%.0f" % b["gbps"]) if "gbps" in b else "-",
            fmt_ms(pms) if pms else (p.get("error", "-")[:40] if p else "-"), ("%.2f" % sp) if sp else "-",
            p.get("first_call_s", "-"), src, e["recorded"] or "-", check_word(checks.get(t)), tails))
        short.append((t, b.get("algorithm", "ERR"), cms, pms, sp, check_word(checks.get(t)), tails,
                      "here" if src == "this run" else ("file" if p else "-")))
    # ---- the targets -------------------------------------------------------------------
    def ratio(t):
        b, p = bench.get(t) or {}, peers.get(t) or {}
        return (p["ms"] / b["median_ms"]) if (b.get("median_ms") and p.get("ms")) else None

    targets = []
    std = [e["problem"] for e in suite if e["section"].startswith("standard layers")]
    rs = [ratio(t) for t in std]
    have = [r for r in rs if r]
    if have:
        gm = math.exp(sum(math.log(r) for r in have) / len(have))
        targets.append(("standard bf16 layers: geometric mean of PyTorch/convnd (%d of %d problems)" % (len(have), len(std)),
                        "%.2f" % gm, ">= 0.7", gm >= 0.7 and len(have) == len(std)))
    for t in std:
        if "g=384" in t:
            r = ratio(t)
            targets.append(("depthwise " + t, "%.2f" % r if r else "-", ">= 1.0", bool(r and r >= 1.0)))
    large = [e["problem"] for e in suite if e["section"].startswith("more than 2^31")]
    for t in large:
        r = ratio(t)
        need = 20.0 if t.startswith("n=1 ") else 1.0
        if r is None:
            rec = next((e["recorded_ms"] for e in suite if e["problem"] == t), None)
            b = bench.get(t) or {}
            if rec and b.get("median_ms"):
                r = rec / b["median_ms"]
                targets.append((t + " (vs the suite's recorded PyTorch time: no peer this run)", "%.2f" % r,
                                ">= %g" % need, r >= need))
                continue
        targets.append((t, "%.2f" % r if r else "-", ">= %g" % need, bool(r and r >= need)))
    for e in suite:
        t = e["problem"]
        if t.startswith("op=convT in=1000000"):
            b = bench.get(t) or {}
            if b.get("gbps") and copy and copy.get("copy_GBps"):
                share = b["gbps"] / copy["copy_GBps"]
                targets.append((t + ": share of copy bandwidth", "%.0f%%" % (100 * share), ">= 50%", share >= 0.5))
    worst_pause = None
    for t, b in bench.items():
        if b.get("median_ms") is None:
            continue
        pause = (b.get("plan_ms") or 0) + max(0.0, (b.get("warmup_ms") or 0) - b["median_ms"])
        if worst_pause is None or pause > worst_pause[0]:
            worst_pause = (pause, t)
    if worst_pause:
        targets.append(("first call's pause (planning + warm-up beyond a run), worst: " + worst_pause[1],
                        "%.0f ms" % worst_pause[0], "<= 1000 ms", worst_pause[0] <= 1000))
    unchecked = [t for t in (e["problem"] for e in suite)
                 if not (bench.get(t) or {}).get("tails_pass") and check_word(checks.get(t)) != "PASS"]
    targets.append(("suite problems run and checked (tails or sampled check)",
                    "%d of %d" % (len(suite) - len(unchecked), len(suite)), "all", not unchecked))
    lines.append("")
    lines.append("## Targets")
    lines.append("")
    lines.append("| target | measured | wanted | met |")
    lines.append("| --- | --- | --- | --- |")
    for name, got, want, ok in targets:
        lines.append("| %s | %s | %s | %s |" % (name, got, want, "yes" if ok else "**no**"))

    variants = read_jsonl(a.variants)
    if variants:
        lines.append("")
        lines.append("## Tile alternatives (gpu_bench --tile), against the planner's choice")
        lines.append("")
        lines.append("| problem | planner's configuration | ms | alternative | ms |")
        lines.append("| --- | --- | --- | --- | --- |")
        for v in variants:
            t = v.get("suite", "?")
            b = bench.get(t) or {}
            r = v.get("result") if isinstance(v.get("result"), dict) else {}
            tiles = b.get("config") or b.get("tiles") or {}
            lines.append("| `%s` | %s | %s | %s | %s |" % (
                t, ", ".join("%s=%s" % kv for kv in tiles.items()) or "-",
                fmt_ms(b.get("median_ms")), v.get("variant", "?").strip(),
                fmt_ms(r.get("median_ms")) if r else str(v.get("result"))[:60]))
    md = "\n".join(lines) + "\n"
    for path in a.out:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as fh:
            fh.write(md)

    # The short table, printed last.
    print("\n== summary (%s)" % device)
    for n in a.note:
        print("  " + n)
    if tests:
        print("  unit tests: %d passed, %d failed, %d skipped %s" % (tests["passed"], tests["failed"], tests["skipped"],
                                                                     " ".join(tests["failed_names"][:6])))
    for name, rows in sorted(lists.items()):
        ok = sum(1 for r in rows if (r.get("result") or {}).get("result") == "PASS")
        print("  list %s: %d/%d PASS" % (name, ok, len(rows)))
    if copy:
        print("  copy bandwidth: %.0f GB/s" % copy.get("copy_GBps", 0))
    for name, got, want, ok in targets:
        print("  target %-4s %s: %s (want %s)" % ("ok" if ok else "MISS", name[:90], got, want))
    print("  %-52s %-26s %9s %9s %-5s %7s %-8s %s" % ("problem", "algorithm", "convnd", "torch", "from", "speedup",
                                                      "check", "tails"))
    for t, algo, cms, pms, sp, chk, tails, frm in short:
        print("  %-52s %-26s %9s %9s %-5s %7s %-8s %s" % (t[:52], (algo or "")[:26], fmt_ms(cms), fmt_ms(pms), frm,
                                                      ("%.2f" % sp) if sp else "-", chk[:8], tails))
    for v in variants:
        r = v.get("result") if isinstance(v.get("result"), dict) else {}
        b = bench.get(v.get("suite", "?")) or {}
        print("  variant %-52s %-28s %9s (planner's %s)" % (
            v.get("suite", "?")[:52], v.get("variant", "?").strip()[:28],
            fmt_ms(r.get("median_ms")) if r else str(v.get("result"))[:40], fmt_ms(b.get("median_ms"))))


if __name__ == "__main__":
    main()
