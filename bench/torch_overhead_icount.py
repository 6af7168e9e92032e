"""Instructions per call of a tiny conv through convnd.torch and through torch.nn.functional,
counted by valgrind's callgrind (deterministic: a noisy machine's microseconds cannot show a
few percent, its instruction counts can). The problem is bench/torch_overhead.py's (issue 12's
yardstick): x (1, 8, 8, 8) channels-last, w (8, 8, 3, 3), padding 1, float32, no_grad, one
thread. Only the loop is counted (callgrind collects inside functools.reduce, which runs it);
imports and warm-up are not.

  python3 bench/torch_overhead_icount.py [--calls 2000] [--out FILE.md]

Needs valgrind (apt-get install valgrind). Prints (and with --out writes) a table of both sides.
"""
import argparse, os, platform, re, subprocess, sys, tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import emit  # noqa: E402

CHILD = r"""
import functools, sys, torch
import torch.nn.functional as F
import convnd.torch as ct
torch.set_num_threads(1)
x = torch.randn(1, 8, 8, 8).contiguous(memory_format=torch.channels_last)
w = torch.randn(8, 8, 3, 3)
conv = {"torch": F.conv2d, "convnd": ct.conv2d}[sys.argv[1]]
with torch.no_grad():
    for _ in range(50):
        conv(x, w, padding=1)
    functools.reduce(lambda a, _: conv(x, w, padding=1), range(int(sys.argv[2])), None)
"""


def count(side, calls):
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
                              f"--callgrind-out-file={d}/cg.out", sys.executable, "-c", CHILD, side, str(calls)],
                             capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if not m:
        raise RuntimeError(f"callgrind gave no count for {side}: {out.stderr[-400:]}")
    return int(m.group(1)) / calls


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--out")
    a = ap.parse_args()
    t, c = count("torch", a.calls), count("convnd", a.calls)
    emit([f"# Instructions per tiny conv call: convnd.torch against torch.nn.functional", "",
          f"`bench/torch_overhead_icount.py --calls {a.calls}` (valgrind --tool=callgrind, the loop only). "
          f"Machine: {platform.machine()}; torch {torch.__version__}.", "",
          "| call | instructions per call |", "| --- | --- |",
          f"| torch.nn.functional.conv2d | {t:.0f} |",
          f"| convnd.torch.conv2d | {c:.0f} |",
          f"| convnd extra | {c - t:+.0f} ({c / t:.2f}x torch's call) |"], a.out)


if __name__ == "__main__":
    main()
