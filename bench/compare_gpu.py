"""Joins one bench/gpu.sh run into a report: convnd's device-resident times (bench/gpu_bench.cu),
PyTorch's on the same problems (bench/peers_gpu.py), convnd's sampled checks, the unit tests, and
the device ceilings measured in the same run. Writes a markdown report and prints a short table.

  python3 bench/compare_gpu.py --suite bench/gpu-suite.txt --bench bench.jsonl --peers peers.jsonl
      --checks checks.jsonl --tests tests.log --out report.md [--out copy.md] [--note 'build: ok'] ...
"""
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
    if ceil:
        cb.append("PyTorch copy_ %s GB/s" % ceil.get("torch_copy_GBps", "?"))
        cb.append("GEMM 8192^3 fp32 %s, bf16 %s TFLOP/s" % (ceil.get("gemm_fp32_TFLOPs", "?"), ceil.get("gemm_bf16_TFLOPs", "?")))
    if cb:
        lines.append("Ceilings measured in this run: " + "; ".join(cb) + ".")
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
    lines.append("| problem | convnd algorithm | convnd ms | TFLOP/s | GB/s | PyTorch ms | speedup | PyTorch first call s | suite's PyTorch (H200) | check | >2^31 tails |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
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
        lines.append("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            t, algo, fmt_ms(cms), ("%.1f" % b["tflops"]) if "tflops" in b else "-",
            ("%.0f" % b["gbps"]) if "gbps" in b else "-",
            fmt_ms(pms) if pms else (p.get("error", "-")[:40] if p else "-"), ("%.2f" % sp) if sp else "-",
            p.get("first_call_s", "-"), e["recorded"] or "-", check_word(checks.get(t)), tails))
        short.append((t, b.get("algorithm", "ERR"), cms, pms, sp, check_word(checks.get(t)), tails))
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
    print("  %-52s %-26s %9s %9s %7s %-8s %s" % ("problem", "algorithm", "convnd", "torch", "speedup", "check", "tails"))
    for t, algo, cms, pms, sp, chk, tails in short:
        print("  %-52s %-26s %9s %9s %7s %-8s %s" % (t[:52], (algo or "")[:26], fmt_ms(cms), fmt_ms(pms),
                                                 ("%.2f" % sp) if sp else "-", chk[:8], tails))


if __name__ == "__main__":
    main()
