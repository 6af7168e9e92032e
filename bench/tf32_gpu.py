"""float32 forward convs on an NVIDIA GPU, exact and TF32, convnd against cuDNN (through
PyTorch) in one run: issue 13's "exact path >= cuDNN's exact path; TF32 path >= cuDNN's TF32".

For each dense layer of --suite (bench/gpu-layers-suite.txt's, made float32; grouped layers are
left out: convnd has no TF32 kernel for them and runs them exactly):
  cuDNN:  torch.nn.functional.conv*d on channels-last CUDA tensors, cudnn.benchmark=True, with
          torch.backends.cudnn.allow_tf32 False (exact) and True (TF32); CUDA-event median;
  convnd: `gpu_bench` device-resident (device tensors, plan made once), without and with --tf32
          (ExecOptions::allow_tf32);
  convnd through Python: convnd.conv2d/conv3d(..., device="cuda", precision=...) on PyTorch
          CUDA tensors (DLPack, in place), back to back; the mean per call of R calls, wall time
          between two synchronisations.
Writes JSON lines to stdout and a markdown table to --out (ratio = cuDNN ms / convnd ms).

  python3 bench/tf32_gpu.py --gpu-bench PATH --out tf32-gpu.md
"""
import argparse, json, os, subprocess, sys, time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grad_gpu import parse, torch_times  # noqa: E402
from report import emit, summaries  # noqa: E402


def convnd_resident(gpu_bench, problem, reps, tf32):
    out = subprocess.run([gpu_bench, "--reps", str(reps), *(["--tf32"] if tf32 else []), problem],
                         capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith('{"problem"'):
            j = json.loads(line)
            return (j["median_ms"], j.get("algorithm")) if "median_ms" in j else (None, j.get("error"))
    return None, (out.stderr or out.stdout)[-200:]


def convnd_python(problem, reps, precision):
    """convnd's own Python call (convnd.conv2d/conv3d, device="cuda", precision=...) on PyTorch's
    CUDA tensors in convnd's channels-last layouts, read in place through DLPack. convnd.torch has
    no precision option (it runs float32 exactly), so this is the Python call that has one."""
    import convnd
    p = parse(problem)
    fn = {2: convnd.conv2d, 3: convnd.conv3d}[p["rank"]]
    x = torch.randn(p["n"], *p["in"], p["c"], device="cuda")
    w = torch.randn(p["o"], *p["k"], p["c"], device="cuda")
    call = lambda: fn(x, w, stride=p["stride"], padding=p["pad"], dilation=p["dil"], device="cuda",
                      precision=precision)
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        call()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3 / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu-bench", required=True)
    ap.add_argument("--suite", default="bench/gpu-layers-suite.txt")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    probs = []
    for line in open(a.suite):
        prob = line.split("#")[0].strip()
        if prob and " g=" not in f" {prob}" and "dtype=f16" not in prob:
            probs.append(" ".join(t for t in prob.split() if not t.startswith("dtype=")))
    try:
        import convnd
        have_python = convnd.has_cuda()
    except ImportError:
        have_python = False
    recs = []
    for prob in probs:
        for mode in ("exact", "tf32"):
            tf32 = mode == "tf32"
            cms, algo = convnd_resident(a.gpu_bench, prob, a.reps, tf32)
            torch.backends.cudnn.allow_tf32 = tf32
            try:
                _, tms = torch_times(prob, "fwd", a.reps)
            except Exception as e:
                tms = None
                print(f"torch failed on {prob}: {e}", file=sys.stderr)
            py = None
            if have_python:
                try:
                    py = convnd_python(prob, a.reps, mode)
                except Exception as e:
                    print(f"convnd through Python failed on {prob} ({mode}): {e}", file=sys.stderr)
            rec = {"problem": prob, "precision": mode, "cudnn_ms": tms and round(tms, 4), "convnd_ms": cms,
                   "convnd_algorithm": algo, "python_ms": py and round(py, 4),
                   "ratio": round(tms / cms, 3) if tms and cms else None,
                   "python_ratio": round(tms / py, 3) if tms and py else None,
                   "device": torch.cuda.get_device_name()}
            print(json.dumps(rec), flush=True)
            recs.append(rec)
    lines = [f"# float32 forward convs, exact and TF32: convnd against cuDNN, {time.strftime('%Y-%m-%d')}", "",
             f"Device: {torch.cuda.get_device_name()}. torch {torch.__version__}, cuDNN "
             f"{torch.backends.cudnn.version()} (channels-last, cudnn.benchmark=True, cudnn.allow_tf32 off for "
             "'exact', on for 'tf32'; CUDA-event median). convnd: `gpu_bench` device-resident (`--tf32` for "
             "'tf32'), and through Python (convnd.conv2d/conv3d on PyTorch CUDA tensors, `precision=`, back to "
             "back, wall time per call). "
             "Ratio = cuDNN ms / convnd ms (above 1: convnd is faster).", "",
             "| problem | precision | cuDNN ms | convnd ms | convnd algorithm | ratio | Python ms | Python ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in recs:
        lines.append(f"| `{r['problem']}` | {r['precision']} | {r['cudnn_ms']} | {r['convnd_ms']} | "
                     f"{r['convnd_algorithm']} | {r['ratio']} | {r['python_ms']} | {r['python_ratio']} |")
    summaries(lines, [(f"{mode}, {what}", [r[key] for r in recs if r["precision"] == mode])
                      for mode in ("exact", "tf32")
                      for key, what in (("ratio", "device-resident"), ("python_ratio", "through Python"))])
    emit(lines, a.out)


if __name__ == "__main__":
    main()
