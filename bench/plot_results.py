"""Plots a benchmark result of bench/results/ next to it, and links the plot from it.

    plot_results.py RESULT.md [RESULT.md ...] [--cpu-bandwidth-gbs 30]

For each markdown result (bench/cpu.sh's cpu-<date>.md or bench/gpu.sh's gpu-<date>.md) this
reads the results table and the same-run ceilings, writes RESULT.png with two panels:

  left:  the speed-up over the peer (PyTorch time / convnd time) of every problem, one bar a row
         of the table, with 1x marked; problems without a peer time say so;
  right: a roofline: achieved FLOP/s against arithmetic intensity (FLOP/s over GB/s of the same
         row, i.e. FLOP per byte of x + w + y), under the machine's compute ceilings (GEMM) and
         its memory bandwidth (copy), each point numbered as its bar;

and adds a "## Plots" section with the image to RESULT.md (replaced, not repeated, on a re-run).
Runs with matplotlib; bench/plot.sh provides it in a venv outside the repository.
"""
import argparse
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PLOTS_HEADING = "## Plots"


def parse_table(lines):
    """The first markdown table whose header has a 'problem' column: a list of dicts."""
    for i, line in enumerate(lines):
        if line.startswith("| problem |") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            head = [c.strip() for c in line.strip().strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                rows.append(dict(zip(head, cells)))
            return rows
    raise ValueError("no results table (a header starting with '| problem |')")


def number(cell):
    """'0.84x', '299.0', '1.32' -> float; '—', '-', '', 'over 45 s ...' -> None."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)x?", (cell or "").strip())
    return float(m.group(1)) if m else None


def read_result(path, cpu_bandwidth_gbs):
    text = open(path).read()
    lines = text.splitlines()
    rows = parse_table(lines)
    title = lines[0].lstrip("# ").strip() if lines else os.path.basename(path)
    if "TFLOP/s" in rows[0]:  # the GPU report
        m = re.search(r"Device: \*\*([^*]+)\*\*", text)
        machine = m.group(1) if m else "GPU"
        bw = re.search(r"device-to-device ([0-9.]+) GB/s", text)
        gemm = re.search(r"GEMM [^ ]+ fp32 ([0-9.]+), bf16 ([0-9.]+) TFLOP/s", text)
        ceilings = []
        if gemm:
            ceilings = [("bf16 GEMM", float(gemm.group(2))), ("fp32 GEMM", float(gemm.group(1)))]
        points = [(r["problem"].strip("`"), number(r.get("TFLOP/s")), number(r.get("GB/s")),
                   number(r.get("speedup"))) for r in rows]
        return dict(title=title, machine=machine, unit="TFLOP/s", scale=1e12, points=points, ceilings=ceilings,
                    bandwidth=(float(bw.group(1)), "cudaMemcpy D2D, this run") if bw else None)
    m = re.search(r"^Machine: (.*?)\.?$", text, re.M)
    machine = m.group(1) if m else "CPU"
    sgemm = re.search(r"OpenBLAS sgemm \(numpy\) ([0-9.]+) GFLOP/s", text)
    tsgemm = re.search(r"PyTorch sgemm ([0-9.]+) GFLOP/s", text)
    copy = re.search(r"copy \(numpy[^)]*\) ([0-9.]+) GB/s", text)
    ceilings = [(name, float(g.group(1))) for name, g in (("OpenBLAS sgemm", sgemm), ("PyTorch sgemm", tsgemm)) if g]
    if copy:
        bandwidth = (float(copy.group(1)), "numpy copy, this run")
    else:
        bandwidth = (cpu_bandwidth_gbs, "cpu-notes.md, not measured in this run")
    points = [(r["problem"].strip("`"), number(r.get("GFLOP/s")), number(r.get("GB/s")), number(r.get("ratio")))
              for r in rows]
    return dict(title=title, machine=machine, unit="GFLOP/s", scale=1e9, points=points, ceilings=ceilings,
                bandwidth=bandwidth)


def plot(res, png):
    pts = res["points"]
    n = len(pts)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(17, max(5.5, 0.42 * n + 2.2)),
                                   gridspec_kw={"width_ratios": [1.25, 1]})
    fig.suptitle(f"{res['title']}: {res['machine']}", fontsize=13)

    # Speed-up over the peer, one bar a problem, the first row at the top.
    labels = [f"{i + 1}. {p[0]}" for i, p in enumerate(pts)]
    ys = list(range(n))[::-1]
    sp = [p[3] for p in pts]
    have = [s for s in sp if s]
    lo = min(have + [1.0]) / 1.6
    hi = max(have + [1.0]) * 2.5
    colors = ["#2b8a3e" if (s or 0) >= 1 else "#c92a2a" for s in sp]
    ax1.barh(ys, [s if s else 0 for s in sp], left=0, color=colors, height=0.65)
    ax1.set_xscale("log")
    ax1.set_xlim(lo, hi)
    ax1.axvline(1.0, color="black", lw=1)
    for y, s in zip(ys, sp):
        ax1.text(s * 1.06 if s else lo * 1.1, y, f"{s:.2f}x" if s else "no peer time", va="center", fontsize=9,
                 color="black" if s else "#868e96")
    ax1.set_yticks(ys)
    ax1.set_yticklabels(labels, fontsize=8.5, family="monospace")
    ax1.set_xlabel("speed-up over PyTorch (PyTorch ms / convnd ms; log scale; right of 1 = convnd faster)")
    ax1.set_title("Speed-up over the peer, per problem")
    ax1.grid(axis="x", which="both", alpha=0.3)

    # Roofline: achieved FLOP/s against FLOP per byte, under the machine's ceilings.
    bw, bw_note = res["bandwidth"] if res["bandwidth"] else (None, "")
    unit = res["unit"]
    xs, fs = [], []
    offsets = [(5, 4), (5, -11), (-13, 4), (-13, -11)]
    kinds = {}
    for i, (prob, f, b, _) in enumerate(pts):
        if f and b:
            ai = f * res["scale"] / (b * 1e9)  # FLOP per byte
            # Labels of points that lie close together (in log space) take turns around them.
            near = sum(1 for x, y in zip(xs, fs) if abs(math.log10(x / ai)) < 0.12 and abs(math.log10(y / f)) < 0.08)
            xs.append(ai)
            fs.append(f)
            dtype = re.search(r"dtype=(\w+)", prob)
            kind = dtype.group(1) if dtype else "f32"
            style = {"bf16": ("#e8590c", "s"), "f16": ("#e8590c", "D")}.get(kind, ("#1c7ed6", "o"))
            ax2.scatter([ai], [f], s=40, color=style[0], marker=style[1], zorder=3,
                        label=None if kind in kinds else f"convnd, {kind}")
            kinds[kind] = True
            ax2.annotate(str(i + 1), (ai, f), textcoords="offset points", xytext=offsets[near % 4], fontsize=9)
    xmin = min(xs + [1.0]) / 3
    xmax = max(xs + [1.0]) * 3
    grid = [xmin * (xmax / xmin) ** (k / 200) for k in range(201)]
    peak = max([c for _, c in res["ceilings"]] + fs + [1e-9])
    for k, (name, c) in enumerate(res["ceilings"]):
        roof = [min(c, bw * x * 1e9 / res["scale"]) if bw else c for x in grid]
        ax2.plot(grid, roof, color=["#e8590c", "#f08c00", "#5f3dc4"][k % 3], lw=2 if k == 0 else 1.2,
                 ls="-" if k == 0 else "--", label=f"{name} {c:g} {unit}")
    if bw:
        ax2.plot(grid, [bw * x * 1e9 / res["scale"] for x in grid], color="#495057", lw=1, ls=":",
                 label=f"memory {'~' if 'not measured' in bw_note else ''}{bw:g} GB/s ({bw_note})")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlim(xmin, xmax)
    ymin = min(fs + [peak]) / 5
    ax2.set_ylim(ymin, peak * 2)
    ax2.set_xlabel("arithmetic intensity (FLOP per byte of x + w + y; = achieved FLOP/s over GB/s)")
    ax2.set_ylabel(f"achieved {unit}")
    ax2.set_title(f"Roofline: achieved {unit} and GB/s under the machine's limits")
    ax2.grid(which="both", alpha=0.3)
    ax2.legend(fontsize=8.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)


def link(md_path, png_name):
    text = open(md_path).read()
    section = (f"{PLOTS_HEADING}\n\nSpeed-up over PyTorch per problem, and a roofline of the achieved throughput "
               f"against this machine's limits (made by `bench/plot.sh`):\n\n![plots of this result]({png_name})\n")
    if PLOTS_HEADING + "\n" in text:
        head, _, rest = text.partition(PLOTS_HEADING + "\n")
        nxt = re.search(r"^## ", rest, re.M)
        text = head + section + ("\n" + rest[nxt.start():] if nxt else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(md_path, "w").write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", help="markdown results of bench/cpu.sh or bench/gpu.sh")
    ap.add_argument("--cpu-bandwidth-gbs", type=float, default=30.0,
                    help="memory bandwidth for a CPU result that measured none (default: 30, cpu-notes.md)")
    args = ap.parse_args()
    for md in args.results:
        res = read_result(md, args.cpu_bandwidth_gbs)
        png = os.path.splitext(md)[0] + ".png"
        plot(res, png)
        link(md, os.path.basename(png))
        print(f"[plot] {png}")


if __name__ == "__main__":
    sys.exit(main())
