"""The package surface: plan(), problem_string(), budgets, docstrings and type stubs."""

import ast
import inspect
import pathlib

import numpy as np
import pytest

import convnd

PLAN_KEYS = {"problem", "direction", "backend", "algorithm", "via", "isa", "workspace_bytes", "budget_bytes",
             "index_bits", "threads", "config", "rejected"}


def test_plan_from_problem_string():
    p = convnd.plan("op=convT in=5160 c=1 o=1 k=4096 stride=1024")
    assert set(p) == PLAN_KEYS
    assert p["problem"] == "op=convT in=5160 c=1 o=1 k=4096 stride=1024"
    assert p["backend"] == "cpu"
    assert p["direction"] == "fwd" and p["isa"] in ("generic", "avx2", "avx512")
    assert isinstance(p["config"], dict) and p["config"] and isinstance(p["rejected"], list)
    for r in p["rejected"]:
        assert set(r) == {"algorithm", "reason"}


def test_plan_of_a_gradient():
    """Gradient problems plan like forward ones: the input gradient through a forward algorithm
    (named in `via`), the weight gradient with its own."""
    p = convnd.plan("dir=bwd_w n=8 in=56x56 c=64 o=64 k=3x3 pad=1")
    assert set(p) == PLAN_KEYS
    assert p["direction"] == "bwd_w" and p["problem"] == "n=8 in=56x56 c=64 o=64 k=3x3 pad=1 dir=bwd_w"
    assert p["algorithm"] and isinstance(p["via"], str)
    d = convnd.plan("op=convT in=5 c=1 o=1 k=3 stride=2 pad=3 dir=bwd_d")
    assert d["direction"] == "bwd_d" and d["algorithm"]
    assert convnd.plan("in=8 c=1 o=1 k=3")["direction"] == "fwd"


def test_plan_from_arrays_and_op():
    x = np.zeros((2, 9, 9, 4), np.float16)
    w = np.zeros((8, 3, 3, 2), np.float16)
    p = convnd.plan(x, w, 2, 1, op="conv2d", groups=2, threads=1)
    assert p["problem"] == "n=2 in=9x9 c=4 o=8 k=3x3 stride=2 pad=1 g=2 dtype=f16"
    assert p["threads"] == 1
    # conv_general with the same numbers is the same problem
    assert convnd.plan(x, w, stride=2, padding=([1, 1], [1, 1]), groups=2)["problem"] == p["problem"]
    t = convnd.plan(np.zeros((1, 7, 3), np.float32), np.zeros((2, 4, 3), np.float32), op="conv_transpose1d",
                    stride=3, output_padding=1)
    assert t["problem"] == "op=convT in=7 c=3 o=2 k=4 stride=3 outpad=1"


@pytest.mark.parametrize("budget,bytes_", [(12345, 12345), ("64MiB", 64 << 20), ("1GB", 10**9)])
def test_budget_forms(budget, bytes_):
    assert convnd.plan("in=8 c=1 o=1 k=3", budget=budget)["budget_bytes"] == bytes_


def test_zero_budget_is_out_of_memory_not_a_slow_fallback():
    """Every fast algorithm needs some workspace; the oracle is no fallback for them."""
    with pytest.raises(MemoryError, match="budget is 0"):
        convnd.plan("in=8 c=1 o=1 k=3", budget="0")


def test_default_budget(monkeypatch):
    monkeypatch.delenv("CONVND_WORKSPACE_BYTES", raising=False)
    assert convnd.plan("in=8 c=1 o=1 k=3")["budget_bytes"] == convnd.default_workspace_budget()
    monkeypatch.setenv("CONVND_WORKSPACE_BYTES", "3MiB")
    assert convnd.plan("in=8 c=1 o=1 k=3")["budget_bytes"] == 3 << 20


def test_tiny_budget_gives_the_same_answer(rng):
    """Whatever algorithm a tiny budget forces, the result is the same as the default's."""
    x = rng.integers(-2, 3, (2, 33, 17, 8)).astype(np.float32)
    w = rng.integers(-2, 3, (16, 3, 3, 8)).astype(np.float32)
    a = convnd.conv2d(x, w, padding=1)
    try:
        b = convnd.conv2d(x, w, padding=1, budget=4096)
    except MemoryError:
        pytest.skip("no algorithm fits a 4 KiB budget for this problem")
    np.testing.assert_array_equal(a, b)


def test_forcing_an_algorithm():
    p = convnd.plan("n=2 in=8x8 c=3 o=5 k=3x3", algorithm="reference")
    assert p["algorithm"] == "reference"


def test_problem_string_canonical():
    assert convnd.problem_string("k=3 o=1 c=1 in=8 n=1 stride=1") == "in=8 c=1 o=1 k=3"
    x = np.zeros((1, 9, 7, 6), np.float64)
    w = np.zeros((4, 3, 2, 3), np.float64)
    s = convnd.problem_string(x, w, stride=[2, 1], padding=([0, 1], [2, 0]), kernel_dilation=[1, 2],
                              input_dilation=[2, 1], groups=2, flip=True)
    assert s == "in=9x7 c=6 o=4 k=3x2 stride=2x1 pad=0:2x1:0 dil=1x2 idil=2x1 g=2 flip=1 dtype=f64"
    assert convnd.problem_string(s) == s


def test_problem_shapes():
    x, w, y = convnd.problem_shapes("op=convT n=2 in=5x6 c=4 o=6 k=3x2 stride=2 pad=1 g=2")
    assert x == (2, 5, 6, 4) and w == (6, 3, 2, 2) and y == (2, 9, 10, 6)


def test_problem_string_rejects_extra_arguments():
    with pytest.raises(TypeError):
        convnd.plan("in=8 c=1 o=1 k=3", stride=2)
    with pytest.raises(TypeError):
        convnd.plan(np.zeros((1, 8, 1)))
    with pytest.raises(ValueError):
        convnd.plan(np.zeros((1, 8, 1)), np.zeros((1, 3, 1)), op="conv4d")


def test_every_public_function_has_a_docstring():
    for name in convnd.__all__:
        obj = getattr(convnd, name)
        assert callable(obj), name
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, name


def _stub_functions(path):
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args]
            out.setdefault(node.name, []).append((names, [x.arg for x in a.kwonlyargs]))
    return out


def test_stubs_match_the_package():
    pkg = pathlib.Path(convnd.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_core.pyi").exists(), "nanobind stubgen output missing from the wheel"
    stubs = _stub_functions(pkg / "__init__.pyi")
    for name in convnd.__all__:
        assert name in stubs, f"{name} missing from __init__.pyi"
        sig = inspect.signature(getattr(convnd, name))
        pos = [p.name for p in sig.parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
        kwonly = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
        if len(stubs[name]) == 1:  # overloads are checked by hand
            assert stubs[name][0] == (pos, kwonly), name


def test_version():
    assert convnd.__version__.count(".") == 2


def test_isa_keyword():
    p = convnd.plan("n=1 in=8x8 c=3 o=4 k=3x3", isa="generic")
    assert p["isa"] == "generic"
    assert convnd.plan("n=1 in=8x8 c=3 o=4 k=3x3", isa="auto")["isa"] in ("generic", "avx2", "avx512")
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 9, 9, 4)).astype(np.float32)
    w = rng.integers(-3, 4, (8, 3, 3, 4)).astype(np.float32)
    # Small integers: every ISA's sum is exact, so the results are equal bit for bit.
    np.testing.assert_array_equal(convnd.conv2d(x, w, padding=1, isa="generic"), convnd.conv2d(x, w, padding=1))


def test_precision_keyword():
    """precision="exact" (the default) or "tf32"; TF32 applies to float32 on a GPU only, so on
    the CPU both give the same plan and the same bits. A plan shows precision only where its
    algorithm multiplies float32 as TF32 (none on the CPU)."""
    problem = "n=2 in=9x9 c=8 o=16 k=3x3 pad=1"
    default = convnd.plan(problem)
    assert "precision" not in default and set(default) == PLAN_KEYS
    assert convnd.plan(problem, precision="exact") == default
    # the same algorithm, configuration, ISA and threads
    assert convnd.plan(problem, precision="tf32") == default
    for which in ("exact", "tf32"):
        assert convnd.plan(problem + " dir=bwd_w", precision=which)["direction"] == "bwd_w"
    rng = np.random.default_rng(7)
    # General float32 values (not small integers): TF32 would round their products.
    x = rng.standard_normal((2, 9, 9, 8)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 8)).astype(np.float32)
    xt = rng.standard_normal((2, 7, 8)).astype(np.float32)
    wt = rng.standard_normal((6, 4, 8)).astype(np.float32)
    calls = [
        lambda **kw: convnd.conv2d(x, w, padding=1, **kw),
        lambda **kw: convnd.conv_general(x, w, stride=2, padding=([1, 0], [0, 1]), flip=True, **kw),
        lambda **kw: convnd.conv_transpose1d(xt, wt, stride=2, padding=1, **kw),
        lambda **kw: convnd.grad.conv2d_input(x.shape, w, np.ones((2, 9, 9, 16), np.float32), padding=1, **kw),
        lambda **kw: convnd.grad.conv2d_weight(x, w.shape, np.ones((2, 9, 9, 16), np.float32), padding=1, **kw),
    ]
    for call in calls:
        want = call()
        assert want.dtype == np.float32
        np.testing.assert_array_equal(call(precision="exact"), want)
        np.testing.assert_array_equal(call(precision="tf32"), want)
    # Other dtypes ignore it too.
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    np.testing.assert_array_equal(convnd.conv2d(x64, w64, precision="tf32"), convnd.conv2d(x64, w64))
    # Keyword-only, like isa, in every function that takes isa.
    for f in [getattr(convnd, n) for n in convnd.__all__] + [getattr(convnd.grad, n) for n in convnd.grad.__all__]:
        params = inspect.signature(f).parameters
        if "isa" in params:
            assert params["precision"].kind == inspect.Parameter.KEYWORD_ONLY, f.__name__
            assert params["precision"].default == "exact", f.__name__
    assert "precision" in convnd.__doc__ and "tf32" in convnd.__doc__


def test_cuda_stream_context_sets_and_restores():
    # The stream is per thread and restored on exit (even on an exception); CPU calls ignore it.
    import numpy as np
    x = np.ones((1, 8, 2), np.float32)
    w = np.ones((3, 3, 2), np.float32)
    with convnd.cuda_stream(12345):
        y = convnd.conv1d(x, w)  # a CPU call: the stream does not apply
        with convnd.cuda_stream(None):
            assert convnd._core.set_cuda_stream(0) == 0
            convnd._core.set_cuda_stream(0)
    assert convnd._core.set_cuda_stream(0) == 0
    assert np.array_equal(y, convnd.conv1d(x, w))
    with pytest.raises(RuntimeError):
        with convnd.cuda_stream(7):
            raise RuntimeError("inside")
    assert convnd._core.set_cuda_stream(0) == 0
    with pytest.raises(TypeError, match="stream must be"):
        with convnd.cuda_stream("default"):
            pass
    with pytest.raises(ValueError, match="negative"):
        with convnd.cuda_stream(-1):
            pass


def _in_forked_child(fn) -> int:
    """fn() (True: success) in a fork's child under a 30 s alarm; the child's exit status, or
    the signal that ended it as a negative number."""
    import os
    import signal
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(30)
            code = 0 if fn() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)


def test_a_forked_child_computes(rng):
    """multiprocessing's fork start (or a data loader's workers) after convnd ran in the parent:
    the parent's pool threads are not in the child, which must not wait for them."""
    x = rng.standard_normal((2, 17, 13, 24)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 24)).astype(np.float32)
    want = convnd.conv_general(x, w, padding=1, threads=2)
    assert _in_forked_child(lambda: np.array_equal(convnd.conv_general(x, w, padding=1, threads=2), want)) == 0
