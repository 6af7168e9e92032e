"""The sweep examples run (small versions) and report PASS."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "script,args",
    [
        ("sweep_pointwise_2g.py", ["--quick", "--samples", "32"]),
        ("sweep_pointwise_2g.py", ["--quick", "--dtype", "bf16", "--inline", "--batches", "3"]),
        ("sweep_long_kernel_convT.py", ["--quick", "--lengths", "5150:5152"]),
        ("sweep_long_kernel_convT.py", ["--quick", "--dtype", "f16", "--inline", "--lengths", "300", "--beyond", "0"]),
    ],
)
def test_example_quick(script, args):
    path = EXAMPLES / script
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    r = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout and "FAIL" not in r.stdout, r.stdout
