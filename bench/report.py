"""The ending every side-by-side benchmark script shares: geometric-mean summary lines of a
ratio column, and the Markdown table printed and written to --out."""
import math


def geomean_line(label, ratios):
    """'<label>: geometric mean G over N; lowest L.' of the positive ratios given, or None
    when there are none."""
    rs = [r for r in ratios if r]
    if not rs:
        return None
    gm = math.exp(sum(math.log(v) for v in rs) / len(rs))
    return f"{label}: geometric mean {gm:.3f} over {len(rs)}; lowest {min(rs):.3f}."


def summaries(lines, items):
    """Appends, for each (label, ratios) of items that has ratios, a blank line and its
    geometric-mean line to lines."""
    for label, ratios in items:
        line = geomean_line(label, ratios)
        if line:
            lines += ["", line]


def emit(lines, out):
    """Prints the report and writes it to out (a path; None: print only)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)
