"""One process of a data-parallel run (bench/multi_gpu.sh starts them with torchrun): the small
1-D denoiser of examples/train_torch.py, with convnd layers (convnd.torch.convert) or the stock
ones, under DistributedDataParallel.

Checks that the gradients after one step equal a single-process run of the same model on the
concatenated batch (rank 0; float32, relative to the largest gradient), then times --steps SGD
steps (the median step, synchronised on CUDA). Rank 0 prints one JSON line:
{"layers", "backend", "device", "world", "batch_per_process", "grad_rel_err", "step_ms"}.
"""
import argparse
import copy
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from train_torch import Denoiser, make_signals  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", choices=("convnd", "torch"), default="convnd")
    ap.add_argument("--backend", choices=("nccl", "gloo"), default="nccl")
    ap.add_argument("--batch", type=int, default=16, help="samples per process")
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    dist.init_process_group(a.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    torch.manual_seed(0)  # the same initial weights on every rank
    model = Denoiser()
    if a.layers == "convnd":
        import convnd.torch as ct
        model = ct.convert(model)
    model = model.to(device)
    reference = copy.deepcopy(model) if rank == 0 else None
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    gen = torch.Generator().manual_seed(1)
    noisy, clean = make_signals(world * a.batch, a.length, gen, 0.3)  # the global batch, the same on every rank
    mine = slice(rank * a.batch, (rank + 1) * a.batch)
    x, t = noisy[mine].to(device), clean[mine].to(device)

    # One step: DDP averages the ranks' gradients of their mean losses, which for equal shares
    # is the gradient of the mean loss over the concatenated batch.
    F.mse_loss(ddp(x), t).backward()
    err = None
    if rank == 0:
        F.mse_loss(reference(noisy.to(device)), clean.to(device)).backward()
        got = torch.cat([p.grad.flatten() for p in model.parameters()])
        want = torch.cat([p.grad.flatten() for p in reference.parameters()])
        err = ((got - want).abs().max() / want.abs().max()).item()

    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    times = []
    for _ in range(a.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad()
        F.mse_loss(ddp(x), t).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    if rank == 0:
        print(json.dumps({"layers": a.layers, "backend": a.backend, "device": device.type, "world": world,
                          "batch_per_process": a.batch, "length": a.length,
                          "grad_rel_err": err, "step_ms": round(times[len(times) // 2] * 1e3, 3)}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
