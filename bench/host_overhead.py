"""Host overhead of a tiny conv from Python: convnd.conv2d on NumPy arrays, back to back.
n=1 in=8x8 c=8 o=8 k=3x3 pad=1 (channels-last). Prints the median of 7 rounds in us/call."""
import sys
import time

import numpy as np

import convnd

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
x = np.zeros((1, 8, 8, 8), np.float32)
w = np.zeros((8, 3, 3, 8), np.float32)
rounds = []
for _ in range(7):
    t0 = time.perf_counter()
    for _ in range(calls):
        convnd.conv2d(x, w, padding=1, threads=threads)
    rounds.append((time.perf_counter() - t0) / calls * 1e6)
rounds.sort()
print(f"convnd.conv2d (numpy):   {rounds[3]:8.2f} us/call")
