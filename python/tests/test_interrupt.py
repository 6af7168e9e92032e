"""Ctrl-C stops a long convolution between tiles. Each case runs in a child process that sends
itself SIGINT, so a signal landing at the wrong moment cannot hit the pytest process."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np
    import convnd

    mode = sys.argv[1]
    if mode == "custom":
        class Stop(Exception):
            pass
        def handler(signum, frame):
            raise Stop("stopped by the handler")
        signal.signal(signal.SIGINT, handler)
    # About 10 s on the reference with one thread; the reference reports progress 64 times.
    x = np.ones((1, 768, 128, 64), np.float32)
    w = np.ones((64, 3, 3, 64), np.float32)
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t = time.perf_counter()
    try:
        convnd.conv2d(x, w, padding=1, algorithm="reference", threads=1)
        print("COMPLETED", time.perf_counter() - t)
    except BaseException as e:
        print("RAISED", type(e).__name__, time.perf_counter() - t, str(e))
    # The library stays usable.
    y = convnd.conv1d(np.ones((1, 4, 1), np.float32), np.ones((1, 2, 1), np.float32))
    print("AFTER", float(y.sum()))
    """
)


@pytest.mark.parametrize("mode,exc", [("default", "KeyboardInterrupt"), ("custom", "Stop")])
def test_sigint_stops_between_tiles(mode, exc):
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines()
                 if line.startswith(("RAISED ", "COMPLETED ", "AFTER ")))
    assert "RAISED" in lines, r.stdout
    name, seconds, *_ = lines["RAISED"].split(" ", 2)
    assert name == exc, r.stdout
    assert float(seconds) < 3.0, f"took {seconds} s to stop"
    assert lines["AFTER"] == "6.0"
