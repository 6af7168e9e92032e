"""Shared parts of the sweep examples: one child process per case (so each case's peak memory
is its own), and the PASS/FAIL table."""

import json
import resource
import subprocess
import sys
import time


def peak_rss_mib():
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_child(script, args, timeout=None):
    """Runs `script --child ARGS...`; the child prints one JSON line with its result."""
    cmd = [sys.executable, script, "--child", *map(str, args)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "FAIL", "detail": f"timed out after {timeout} s"}
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": "FAIL", "detail": f"exit {r.returncode}: {tail[0][:200]}"}
    return json.loads(lines[-1])


def child_report(**fields):
    fields.setdefault("peak_mib", peak_rss_mib())
    print(json.dumps(fields), flush=True)


def print_table(title, columns, rows):
    """rows: dicts; columns: (key, header, format)."""
    print(title)
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([("" if r.get(k) is None else f.format(r[k])) for k, _, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for i, c in enumerate(cells):
        print("  ".join(s.rjust(w) for s, w in zip(c, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    fails = sum(r.get("status") != "PASS" for r in rows)
    print(f"{len(rows) - fails} passed, {fails} failed")
    return fails
