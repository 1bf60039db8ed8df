"""PyTorch side of `cargo xtask bench`: training and inference images/s of prunebench's networks.

The networks are tests/fixtures/reference_models.py's (the definitions the logit fixtures are
made with), built from a prunebench model config (`--config`, the JSON of `config.json`, pruned
or not) or by name (`--models resnet20,resnet56,resnet110,vgg16,densenet40`). Random 32x32
inputs; a training step = forward in training mode, cross-entropy, backward, SGD (momentum 0.9,
weight decay 1e-4); inference = forward in eval mode under torch.inference_mode, as it is and
with the BatchNorms that follow a conv folded into it (ResNet, VGG). On the CPU,
channels_last memory format (oneDNN's fast path). With --device cuda[:N], model and data on that
GPU in PyTorch's default (contiguous NCHW) format, TF32 off so convolutions and matmuls compute
in full f32 as candle's CUDA backend does, and torch.cuda.synchronize() around every timed
section. Prints one JSON object per model and line: images/s, the mean seconds of a training
step's phases (forward with the loss, backward, update), and the process's peak resident memory.

PyTorch is only a point of comparison: prunebench never needs it.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/fixtures"))
from reference_models import from_config  # noqa: E402


def named_config(name):
    """prunebench's unpruned CIFAR-10 configs by name, as `ModelConfig::from_name` builds them."""
    if name.startswith("resnet"):
        depth = int(name.removeprefix("resnet"))
        n = (depth - 2) // 6
        return {"arch": "resnet", "depth": depth, "in_channels": 3, "num_classes": 10,
                "block_widths": [16] * n + [32] * n + [64] * n}
    if name == "vgg16":
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
        return {"arch": "vgg", "in_channels": 3, "num_classes": 10, "cfg": cfg,
                "classifier_width": 512}
    if name.startswith("densenet"):
        depth, growth = int(name.removeprefix("densenet")), 12
        n = (depth - 4) // 3
        stem = 2 * growth
        return {"arch": "densenet", "depth": depth, "growth_rate": growth, "in_channels": 3,
                "num_classes": 10, "stem_width": stem, "layer_widths": [growth] * (3 * n),
                "transition_widths": [stem + n * growth, stem + 2 * n * growth]}
    raise SystemExit(f"unknown model {name!r} (resnetN, vgg16, densenetN)")


def memory_format(device):
    return torch.contiguous_format if device.type == "cuda" else torch.channels_last


def peak_rss_bytes():
    # VmHWM, the peak of this process image: ru_maxrss survives execve on Linux, so a child of a
    # large process (the bench, after VGG-16 at batch 256) would report its parent's peak.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fold_batch_norms(model):
    """A copy of `model` (in eval mode) with every BatchNorm2d that directly follows a Conv2d
    folded into it (torch.nn.utils.fusion.fuse_conv_bn_eval), as prunebench's inference folds
    them: the ResNets' conv/bn attribute pairs and VGG's Sequential runs. None where nothing
    folds (DenseNet's BatchNorms come before their convs)."""
    import copy
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    model = copy.deepcopy(model).eval()
    folded = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Sequential):
            items = list(m._modules.items())
            for (ka, a), (kb, b) in zip(items, items[1:]):
                if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
                    m._modules[ka] = fuse_conv_bn_eval(a, b)
                    m._modules[kb] = torch.nn.Identity()
                    folded += 1
        # In the ResNets bnN follows convN; in DenseNet's layers it comes before.
        if type(m).__name__ not in ("ResNet", "BasicBlock"):
            continue
        for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
            a, b = getattr(m, conv, None), getattr(m, bn, None)
            if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
                setattr(m, conv, fuse_conv_bn_eval(a, b))
                setattr(m, bn, torch.nn.Identity())
                folded += 1
    return model if folded else None


def measure(config, train_batch, infer_batch, iters, warmup, device, train_only):
    # The interpreter and torch's libraries, before the model exists.
    baseline = peak_rss_bytes()
    torch.manual_seed(1)
    fmt = memory_format(device)

    def sync():
        # CUDA kernels run after the calls return: wait for them before reading the clock.
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model = from_config(config).to(device=device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    c = config["in_channels"]
    x = torch.randn(train_batch, c, 32, 32).to(device=device, memory_format=fmt)
    y = (torch.arange(train_batch) % config["num_classes"]).to(device)
    phases = [0.0, 0.0, 0.0]

    def step(timed):
        marks = [time.perf_counter()]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if timed:
            sync()
            marks.append(time.perf_counter())
        loss.backward()
        if timed:
            sync()
            marks.append(time.perf_counter())
        opt.step()
        if timed:
            sync()
            marks.append(time.perf_counter())
            for i in range(3):
                phases[i] += marks[i + 1] - marks[i]

    model.train()
    for _ in range(warmup):
        step(False)
    sync()
    # On the CPU the phases are timed in the timed loop (reading the clock costs nothing); a GPU
    # needs a synchronisation per phase, so there they are timed in a second pass.
    cpu = device.type == "cpu"
    t = time.perf_counter()
    for _ in range(iters):
        step(cpu)
    sync()
    train = iters * train_batch / (time.perf_counter() - t)
    if not cpu:
        for _ in range(iters):
            step(True)
    out = {"train_images_per_sec": train, "baseline_rss_bytes": baseline,
           "phase_seconds": {k: v / iters for k, v in zip(("forward", "backward", "update"), phases)}}
    if train_only:
        return out

    model.eval()
    xi = torch.randn(infer_batch, c, 32, 32).to(device=device, memory_format=fmt)

    def images_per_sec(m):
        with torch.inference_mode():
            for _ in range(warmup):
                m(xi).sum().item()
            sync()
            t = time.perf_counter()
            for _ in range(iters):
                m(xi).sum().item()
            sync()
            return iters * infer_batch / (time.perf_counter() - t)

    out["inference_images_per_sec"] = images_per_sec(model)
    # The same network with its BatchNorms folded into the convs: what PyTorch gives a user who
    # folds them, as prunebench's ResNet inference does.
    folded = fold_batch_norms(model)
    if folded is not None:
        folded = folded.to(device=device, memory_format=fmt)
        out["inference_folded_images_per_sec"] = images_per_sec(folded)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="", help="comma-separated names (resnet20, vgg16, ...)")
    p.add_argument("--config", action="append", default=[],
                   help="a prunebench model config as JSON (repeatable)")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--train-only", action="store_true", help="skip inference")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            p.error(f"--device {a.device}: this PyTorch sees no CUDA GPU")
        # Full f32, as candle computes (its f32 GEMMs do not use TF32 unless asked to).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        device_name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        device_name = "cpu"
    else:
        p.error(f"--device takes cpu, cuda or cuda:N, not {a.device}")
    configs = [(n, named_config(n)) for n in a.models.split(",") if n]
    configs += [(None, json.loads(c)) for c in a.config]
    if not configs:
        p.error("give --models or --config")
    for name, config in configs:
        out = measure(config, a.train_batch, a.infer_batch, a.iters, a.warmup, device,
                      a.train_only)
        print(json.dumps({
            "model": name or config["arch"],
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "device_name": device_name,
            "memory_format": str(memory_format(device)).removeprefix("torch."),
            "train_batch": a.train_batch,
            "infer_batch": a.infer_batch,
            "peak_rss_bytes": peak_rss_bytes(),
            **out,
        }), flush=True)


if __name__ == "__main__":
    main()
