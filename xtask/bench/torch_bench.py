"""PyTorch side of `cargo xtask bench`: training and inference images/s of CIFAR ResNets.

The same networks as prunebench's `models` crate (Liu et al.'s l1-norm-pruning ResNet: 3x3
convs, BasicBlocks, option-A shortcut of a 2x2 average pool plus zero channels), random
32x32 RGB inputs, a training step = forward in training mode, cross-entropy, backward, SGD
(momentum 0.9, weight decay 1e-4); inference = forward in eval mode under torch.inference_mode.
On the CPU, channels_last memory format (oneDNN's fast path). With --device cuda[:N], model and
data on that GPU in PyTorch's default (contiguous NCHW) format, TF32 off so convolutions and
matmuls compute in full f32 as candle's CUDA backend does, and torch.cuda.synchronize() around
every timed loop. Prints one JSON object per line.

PyTorch is only a point of comparison: prunebench never needs it.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, inplanes, width, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - inplanes if (stride != 1 or inplanes != planes) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            res = x
        else:
            res = F.pad(F.avg_pool2d(x, 2), (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + res)


class ResNet(nn.Module):
    def __init__(self, depth, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, inplanes = [], 16
        for stage, planes in enumerate([16, 32, 64]):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(inplanes, planes, planes, stride))
                inplanes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = F.avg_pool2d(x, 8).flatten(1)
        return self.fc(x)


def memory_format(device):
    return torch.contiguous_format if device.type == "cuda" else torch.channels_last


def measure(depth, train_batch, infer_batch, iters, warmup, device):
    torch.manual_seed(1)
    fmt = memory_format(device)

    def sync():
        # CUDA kernels run after the calls return: wait for them before reading the clock.
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model = ResNet(depth).to(device=device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(train_batch, 3, 32, 32).to(device=device, memory_format=fmt)
    y = (torch.arange(train_batch) % 10).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    model.train()
    for _ in range(warmup):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    train = iters * train_batch / (time.perf_counter() - t)

    model.eval()
    xi = torch.randn(infer_batch, 3, 32, 32).to(device=device, memory_format=fmt)
    with torch.inference_mode():
        for _ in range(warmup):
            model(xi).sum().item()
        sync()
        t = time.perf_counter()
        for _ in range(iters):
            model(xi).sum().item()
        sync()
        infer = iters * infer_batch / (time.perf_counter() - t)
    return train, infer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet20,resnet56")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
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
    for name in a.models.split(","):
        depth = int(name.removeprefix("resnet"))
        train, infer = measure(depth, a.train_batch, a.infer_batch, a.iters, a.warmup, device)
        print(json.dumps({
            "model": name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "device_name": device_name,
            "memory_format": str(memory_format(device)).removeprefix("torch."),
            "train_images_per_sec": train,
            "inference_images_per_sec": infer,
        }), flush=True)


if __name__ == "__main__":
    main()
