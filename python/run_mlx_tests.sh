#!/usr/bin/env bash
# Tests convnd.mlx (the MLX adapter) in a venv outside the clone: creates or reuses
# ~/.cache/convnd-mlx-venv (CONVND_MLX_VENV overrides) with mlx[cpu], numpy, pytest and the build
# requirements, installs this checkout's convnd there with its MLX extension, and runs
# python/tests/test_mlx.py (which also runs examples/train_mlx.py --quick). Arguments go to pytest.
# The common steps, caching and environment variables: python/framework_tests.sh. The CUDA
# backend is left out of this build (CONVND_CUDA, default OFF here): convnd.mlx runs on MLX's
# CPU stream.
name=mlx
venv="${CONVND_MLX_VENV:-$HOME/.cache/convnd-mlx-venv}"
reqs=("scikit-build-core>=0.10" "nanobind>=2.2" "numpy>=1.22" "ml_dtypes>=0.2" "pytest>=7" "mlx[cpu]>=0.32")
versions='import sys, mlx.core, nanobind; print(sys.version, mlx.core.__version__, nanobind.__version__)'
mlx_ext=ON
banner='import mlx.core as mx, convnd, convnd.mlx; print(f"[mlx] mlx {mx.__version__}, convnd {convnd.__version__}")'
source "$(dirname "$0")/framework_tests.sh"
