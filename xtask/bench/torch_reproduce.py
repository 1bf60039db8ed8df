"""PyTorch side of `cargo xtask reproduce table2 --profile sample`: the same protocol, so a
reviewer can set our engine's accuracies beside PyTorch's.

Per seed s in 1..=--seeds (crates/experiments/src/grid.rs `base_spec`: seed = split_seed =
init seed = s): ResNet-20 (1 channel, 10 classes) trained 4 epochs; its best-val model pruned by
PFEC at ratio 0.5 of every block's first conv; the pruned model retrained 1 epoch with FT, LRW,
SLR (per iteration: the profile's `slr:per=iteration`) and CLR; and the pruned architecture
trained from scratch for 5 epochs (Scratch-E). Every run reports the test accuracy of its
best-val epoch.

Beyond what the protocol needs, the random streams are our engine's, bit for bit: the 90/10
split (NumPy's legacy shuffle), the per-epoch order and the crop/flip draws (SplitMix64 keyed by
seed, epoch and image), and the initial weights (xoshiro256++ + Box-Muller). So the two engines
start from the same weights and see the same batches; what remains is float arithmetic
(summation order in convs, BN, reductions), which compounds over training.

Only torch, numpy and the standard library. PyTorch is only a point of comparison.
"""

import argparse
import copy
import gzip
import json
import math
import os
import struct
import sys
import tempfile
import time

# Idle OpenMP threads sleep instead of spinning (read when torch loads): on a 2-core machine
# shared with other jobs, spinning threads made 2-thread training 5x slower than 1 thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402 (after the environment is set)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
BATCH, EVAL_BATCH = 64, 256  # crates/train/src/spec.rs `paper` (eval batch: rounding only)
MOMENTUM, WEIGHT_DECAY = 0.9, 1e-4  # crates/train/src/sgd.rs SgdConfig::default
ORIGINAL_EPOCHS, RETRAIN_EPOCHS, SCRATCH_EPOCHS = 4, 1, 5  # grid.rs Profile::new(Sample)
RATIO = 0.5  # grid.rs: Variant::ratio("resnet20", 0.5)
FULL_WIDTHS = [16] * 3 + [32] * 3 + [64] * 3  # ResNet-20's block first-conv widths
MEAN, STD = np.float32(0.2860), np.float32(0.3530)  # crates/datasets/src/lib.rs normalize()


# ---------------------------------------------------------------- random streams
def mix(z):
    """SplitMix64's output function (crates/splitmix/src/lib.rs)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class SplitMix64:
    """crates/splitmix/src/lib.rs: `new`, `keyed`, `next_u64`, `below` (Lemire)."""

    def __init__(self, state):
        self.state = state & M64

    @classmethod
    def keyed(cls, parts):
        state = 0x5851F42D4C957F2D
        for p in parts:
            state = mix(state ^ ((p * GOLDEN) & M64))
        return cls(state)

    def next_u64(self):
        self.state = (self.state + GOLDEN) & M64
        return mix(self.state)

    def below(self, n):
        threshold = ((1 << 64) - n) % n
        while True:
            m = self.next_u64() * n
            if (m & M64) >= threshold:
                return m >> 64


class Xoshiro:
    """crates/models/src/init.rs `Rng`: xoshiro256++ seeded by four SplitMix64 outputs."""

    def __init__(self, seed):
        g = SplitMix64(seed)
        self.s = [g.next_u64() for _ in range(4)]

    def next_u64(self):
        s0, s1, s2, s3 = self.s
        r = (s0 + s3) & M64
        result = ((((r << 23) | (r >> 41)) & M64) + s0) & M64
        t = (s1 << 17) & M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & M64
        self.s = [s0, s1, s2, s3]
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def normal(self):
        # Box-Muller, one value per call, in init.rs's order of operations.
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def self_check_rngs():
    # splitmix's doc test; xoshiro256++'s reference first output for the state (1, 2, 3, 4).
    x = Xoshiro(0)
    x.s = [1, 2, 3, 4]
    assert SplitMix64(0).next_u64() == 0xE220A8397B1DCDAF and x.next_u64() == 41943041


# ---------------------------------------------------------------- data
def read_idx(path, magic, dims):
    """A (gzipped) big-endian IDX file: magic, `dims` sizes, bytes (crates/datasets/src/fashion.rs)."""
    if not os.path.exists(path) and os.path.exists(path[:-3]):
        path = path[:-3]
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    head = struct.unpack(">%dI" % (1 + dims), raw[: 4 * (1 + dims)])
    if head[0] != magic:
        sys.exit(f"{path}: IDX magic {head[0]:#010x}, expected {magic:#010x}")
    data = raw[4 * (1 + dims):]
    if len(data) != math.prod(head[1:]):
        sys.exit(f"{path}: {len(data)} data bytes, the header announces {head[1:]}")
    return head[1:], np.frombuffer(data, dtype=np.uint8)


def load_split(directory, prefix):
    """Images zero-padded from 28x28 to 32x32 (2 pixels a side, fashion.rs `pad`) and labels."""
    (n, rows, cols), px = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), 0x803, 3)
    (nl,), labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, 1)
    if (rows, cols) != (28, 28) or nl != n or labels.max() >= 10:
        sys.exit(f"{directory}/{prefix}: not Fashion-MNIST ({n}x{rows}x{cols}, {nl} labels)")
    images = np.zeros((n, 32, 32), dtype=np.uint8)
    images[:, 2:30, 2:30] = px.reshape(n, 28, 28)
    return images, labels.astype(np.int64)


def train_val(n, seed, val_fraction=0.1):
    """crates/datasets/src/split.rs `train_val`: np.random.seed(seed); shuffle(0..n); the first
    floor(0.1 n) are val. Both parts keep the shuffled order."""
    x = list(range(n))
    np.random.RandomState(seed).shuffle(x)
    k = int(math.floor(val_fraction * n))
    return np.array(x[k:]), np.array(x[:k])


# transform.rs `write_image`: (f32(v) / 255 - mean) / std in f32, for every byte value. Padding
# pixels are raw 0 normalised like any other (the pad happens before normalisation).
LUT = ((np.arange(256, dtype=np.float32) / np.float32(255.0) - MEAN) / STD).astype(np.float32)


def to_tensor(u8):
    x = torch.from_numpy(np.ascontiguousarray(LUT[u8])).unsqueeze(1)
    return x.contiguous(memory_format=torch.channels_last)


def epoch_order(n, seed, epoch):
    """transform.rs `epoch_order`: Fisher-Yates with SplitMix64 keyed by (seed, epoch, "SHUF")."""
    g = SplitMix64.keyed([seed, epoch, 0x53485546])
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = g.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


class TrainSet:
    """The training images, augmented as transform.rs `assemble`/`draw`: per image, SplitMix64
    keyed by (seed, epoch, index in the training subset) draws dy, dx in 0..=8 and a flip bit;
    output (r, c) reads the zero-padded (pad 4) image at (r + dy, c' + dx), c' mirrored when
    flipping (crop, then flip, as torchvision)."""

    def __init__(self, images, labels):
        self.padded = np.pad(images, ((0, 0), (4, 4), (4, 4)))
        self.labels = torch.from_numpy(labels)
        self.n = len(labels)

    def batches(self, seed, epoch):
        draws = []
        for i in range(self.n):
            g = SplitMix64.keyed([seed, epoch, i])
            draws.append((g.below(9), g.below(9), g.below(2) == 1))
        dy, dx, flip = (np.array(v) for v in zip(*draws))
        ar = np.arange(32)
        rows = dy[:, None] + ar
        cols = dx[:, None] + np.where(flip[:, None], 31 - ar, ar)
        order = np.array(epoch_order(self.n, seed, epoch))
        for at in range(0, self.n, BATCH):  # `order.chunks(batch)`: a short last batch is kept
            idx = order[at:at + BATCH]
            crop = self.padded[idx[:, None, None], rows[idx][:, :, None], cols[idx][:, None, :]]
            yield to_tensor(crop), self.labels[idx]


# ---------------------------------------------------------------- model
class BasicBlock(nn.Module):
    """crates/models/src/resnet.rs: conv-BN-ReLU, conv-BN, + option-A shortcut (2x2 average
    pool and zero channels appended where the shape changes), ReLU."""

    def __init__(self, inplanes, width, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)  # eps 1e-5, momentum 0.1 (models/src/layers.rs)
        self.conv2 = nn.Conv2d(width, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - inplanes if (stride != 1 or inplanes != planes) else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        res = x if self.pad is None else F.pad(F.avg_pool2d(x, 2), (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + res)


class ResNet(nn.Module):
    """CIFAR ResNet-20 with the given block first-conv widths; state_dict names as ours."""

    def __init__(self, widths, in_channels=1, num_classes=10):
        super().__init__()
        self.widths = list(widths)
        n = len(widths) // 3
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        inplanes = 16
        for stage, planes in enumerate([16, 32, 64]):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(inplanes, widths[stage * n + i], planes, stride))
                inplanes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.avg_pool2d(x, 8).flatten(1))


@torch.no_grad()
def init_weights(model, seed):
    """crates/models/src/init.rs `init_tensors`, value for value: one xoshiro stream over the
    layers in forward order (models/src/layout.rs); conv weights normal(0, sqrt(2 / (k k out)))
    row-major; BN weight 1, bias 0, running mean 0, var 1 (PyTorch's defaults, no draws);
    fc weight then bias uniform(-1/sqrt(64), 1/sqrt(64)). Computed in f64, rounded to f32."""
    rng = Xoshiro(seed)
    for m in model.modules():  # registration order = layout.rs's forward order
        if isinstance(m, nn.Conv2d):
            out, _, kh, kw = m.weight.shape
            std = math.sqrt(2.0 / (out * kh * kw))
            vals = np.array([rng.normal() for _ in range(m.weight.numel())]) * std
            m.weight.copy_(torch.from_numpy(vals.astype(np.float32)).view_as(m.weight))
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            for t in (m.weight, m.bias):
                vals = np.array([(rng.uniform() * 2.0 - 1.0) * bound for _ in range(t.numel())])
                t.copy_(torch.from_numpy(vals.astype(np.float32)).view_as(t))
    return model


@torch.no_grad()
def pfec(model, ratio):
    """PFEC by ratio (crates/experiments/src/prune.rs `filter_targets`, prune-core plan.rs
    `keep_count`/`select_top`, models/src/pruning.rs `channel_groups`): every block's conv1 keeps
    int(n (1 - ratio)) filters of largest l1 norm (ties: the higher index), in ascending order;
    its bn1's four vectors and conv2's input channels are sliced alike."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    widths = []
    for name, m in model.named_modules():
        if not isinstance(m, BasicBlock):
            continue
        n = m.conv1.out_channels
        keep_n = int(n * (1.0 - ratio))
        scores = m.conv1.weight.abs().flatten(1).sum(1).tolist()  # f32 sums, as saliency.rs
        top = sorted(range(n), key=lambda i: (scores[i], i), reverse=True)[:keep_n]
        keep = torch.tensor(sorted(top))
        sd[f"{name}.conv1.weight"] = sd[f"{name}.conv1.weight"][keep]
        for t in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{name}.bn1.{t}"] = sd[f"{name}.bn1.{t}"][keep]
        sd[f"{name}.conv2.weight"] = sd[f"{name}.conv2.weight"][:, keep]
        widths.append(keep_n)
    return widths, sd


# ---------------------------------------------------------------- schedules
def floor_u32(x):
    return max(0, math.floor(x + 1e-9))  # schedules/src/lib.rs `floor_u32`


def original_pieces(epochs):
    """crates/experiments/src/recipe.rs `original_schedule`: 0.1, x0.1 at int(0.5 E) and
    int(0.75 E), a repeated milestone dividing twice (MultiStepLR); chained products, so
    0.1 * 0.1 * 0.1 = 0.0010000000000000002 as ours."""
    pieces = [[0, 0.1]]
    for m in (int(epochs * 0.5), int(epochs * 0.75)):
        if m > 0:
            lr = pieces[-1][1] * 0.1
            if pieces[-1][0] == m:
                pieces[-1][1] = lr
            else:
                pieces.append([m, lr])
    return pieces


def piece_lr(pieces, k):
    return [lr for e, lr in pieces if e <= k][-1]  # schedules/src/step.rs `lr`


def anneal(a, b, p):
    return b + (a - b) / 2.0 * (math.cos(math.pi * p) + 1.0)  # one_cycle.rs Anneal::Cos


def schedule(kind, epochs, steps_per_epoch):
    """`step -> (lr, momentum or None)` as schedules/src/lib.rs `LrSchedule::lr`/`momentum`:
    per-epoch kinds read k = floor(step / steps_per_epoch); SLR and CLR read the iteration. Past the
    budget the last iteration's value. FT/LRW come from the original run's schedule (recipe.rs
    `retraining_schedule`); SLR and CLR from the CIFAR preset (parse.rs: `slr`, `clr` as typed)."""
    total = epochs * steps_per_epoch
    orig = original_pieces(ORIGINAL_EPOCHS)
    own = original_pieces(epochs)

    def slr(t):
        # lib.rs `Slr::lr_continuous`: the sample profile's `slr:per=iteration` (grid.rs
        # `Profile::slr`), at the fractional epoch t. Per epoch (the reference rule) a 1-epoch
        # budget has no warm-up and both drops at epoch 0: FT's constant rate.
        lo, hi, warm = 0.001, 0.1, 0.1  # the CIFAR preset (lib.rs `Slr::preset`)
        w = warm * epochs
        if t < w:
            return lo + (hi - lo) * (1.0 - math.cos(math.pi * (t / w))) / 2.0
        lr = hi
        for d in (0.5, 0.75):
            if t >= w + d * (1.0 - warm) * epochs:
                lr *= 0.1
        return lr

    def clr(step):  # one_cycle.rs `OneCycle`: 0.001 -> 0.1 -> 1e-5, momentum 0.95 -> 0.85 -> 0.95
        u = 0.1 * total - 1.0
        if step <= u:
            p = step / u if u > 0 else 1.0
            return anneal(0.001, 0.1, p), anneal(0.95, 0.85, p)
        p = (step - u) / (total - 1.0 - u)
        return anneal(0.1, 1e-5, p), anneal(0.85, 0.95, p)

    def at(step):
        step = min(step, total - 1)
        k = floor_u32(step / steps_per_epoch)
        if kind == "step":
            return piece_lr(own, k), None
        if kind == "ft":
            return orig[-1][1], None  # the original's last rate, constant
        if kind == "lrw":
            return piece_lr(orig, ORIGINAL_EPOCHS - epochs + k), None  # its last E epochs
        if kind == "slr":
            return slr(step / steps_per_epoch), None
        if kind == "clr":
            return clr(step)
        raise ValueError(kind)

    return at


def check_clr_against_torch(steps):
    """FACTS.md: our CLR is OneCycleLR(max_lr=0.1, div_factor=100, final_div_factor=100,
    pct_start=0.1) stepped per iteration: confirm on this budget before using ours."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=MOMENTUM)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=steps, div_factor=100, final_div_factor=100, pct_start=0.1)
    ours = schedule("clr", 1, steps)
    for i in range(steps):
        lr, mom = ours(i)
        g = opt.param_groups[0]
        if abs(g["lr"] - lr) > 1e-12 or abs(g["momentum"] - mom) > 1e-12:
            sys.exit(f"CLR step {i}: ours lr {lr} momentum {mom}, torch {g['lr']} {g['momentum']}")
        opt.step()
        if i + 1 < steps:
            sched.step()


# ---------------------------------------------------------------- training
@torch.no_grad()
def evaluate(model, x, y):
    """crates/train/src/engine.rs `evaluate`: eval mode (running stats), accuracy; a
    non-finite loss stops the run."""
    model.eval()
    correct, loss = 0, 0.0
    for at in range(0, len(y), EVAL_BATCH):
        logits = model(x[at:at + EVAL_BATCH])
        loss += F.cross_entropy(logits, y[at:at + EVAL_BATCH], reduction="sum").item()
        correct += (logits.argmax(1) == y[at:at + EVAL_BATCH]).sum().item()
    if not math.isfinite(loss):
        sys.exit(f"evaluation loss is {loss}: the model has diverged")
    return correct / len(y)


def fit(model, train, val, test, epochs, kind, seed, label):
    """engine.rs `Fit`: a fresh SGD (a retraining starts with no momentum buffers), lr and
    momentum from the schedule before every step, global step from 0; val and test after every
    epoch; checkpoint.rs KeepBest: the first epoch, then only a strictly better val accuracy."""
    started = time.perf_counter()
    steps = math.ceil(train.n / BATCH)
    sched = schedule(kind, epochs, steps)
    # Weight decay on every parameter (BN included) but not the running statistics, which
    # are buffers: models/src/model.rs `trainable_vars`, train/src/sgd.rs.
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY, nesterov=False)
    best, step = None, 0
    for epoch in range(epochs):
        t = time.perf_counter()
        model.train()
        loss_sum, correct = 0.0, 0
        for x, y in train.batches(seed, epoch):
            lr, mom = sched(step)
            for g in opt.param_groups:
                g["lr"], g["momentum"] = lr, (MOMENTUM if mom is None else mom)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            value = loss.item()
            if not math.isfinite(value):
                sys.exit(f"{label}: loss {value} at epoch {epoch}, step {step}: diverged")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += value * len(y)
            correct += (logits.argmax(1) == y).sum().item()
        val_acc, test_acc = evaluate(model, *val), evaluate(model, *test)
        if best is None or val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "test_acc": test_acc, "best_epoch": epoch,
                    "state": copy.deepcopy(model.state_dict())}
        print(f"{label} epoch {epoch + 1}/{epochs} lr {sched(epoch * steps)[0]:.4g} "
              f"loss {loss_sum / train.n:.4f} train {correct / train.n:.4f} val {val_acc:.4f} "
              f"test {test_acc:.4f} ({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
    best["wall_s"] = time.perf_counter() - started
    best["epochs"] = epochs
    return best


def cpu_model():
    with open("/proc/cpuinfo") as f:
        names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
    return names[0] if names else "unknown"


def write_atomic(path, obj):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".torch_reproduce.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data/sample/fashion-mnist")
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..=N")
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit-train", type=int, default=2048,
                   help="train on the first N images of the training split (grid.rs: 2,048)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    self_check_rngs()
    started = time.perf_counter()
    train_all, train_labels = load_split(a.data_dir, "train")
    test_images, test_labels = load_split(a.data_dir, "t10k")
    test = (to_tensor(test_images), torch.from_numpy(test_labels))  # all of it (limit_eval None)
    steps = math.ceil(min(a.limit_train, len(train_labels) - len(train_labels) // 10) / BATCH)
    check_clr_against_torch(steps * RETRAIN_EPOCHS)
    runs = []

    def record(seed, column, r):
        runs.append({"seed": seed, "column": column, "test_acc": r["test_acc"],
                     "val_acc": r["val_acc"], "best_epoch": r["best_epoch"],
                     "epochs": r["epochs"], "wall_s": round(r["wall_s"], 3)})

    for seed in range(1, a.seeds + 1):
        tr_idx, val_idx = train_val(len(train_labels), seed)
        tr_idx = tr_idx[:a.limit_train]  # engine.rs `prepare`: the first N of the split's order
        train = TrainSet(train_all[tr_idx], train_labels[tr_idx])
        val = (to_tensor(train_all[val_idx]), torch.from_numpy(train_labels[val_idx]))

        model = init_weights(ResNet(FULL_WIDTHS), seed).to(memory_format=torch.channels_last)
        best = fit(model, train, val, test, ORIGINAL_EPOCHS, "step", seed, f"seed {seed} unpruned")
        record(seed, "unpruned", best)
        model.load_state_dict(best["state"])  # the best-val model is pruned (exec.rs Task::Prune)
        widths, pruned = pfec(model, RATIO)

        for column, kind in (("finetune", "ft"), ("lrw", "lrw"), ("slr", "slr"), ("clr", "clr")):
            m = ResNet(widths)
            m.load_state_dict(pruned)
            m = m.to(memory_format=torch.channels_last)
            # spec.rs `retrain`: the origin's seed, so the same data order and augmentation.
            record(seed, column, fit(m, train, val, test, RETRAIN_EPOCHS, kind, seed,
                                     f"seed {seed} {column}"))

        # spec.rs `scratch`: the base spec's init seed on the pruned config, 0.1 dropping at
        # int(0.5 E) and int(0.75 E) (recipe.rs `scratch`).
        m = init_weights(ResNet(widths), seed).to(memory_format=torch.channels_last)
        record(seed, "scratch_e", fit(m, train, val, test, SCRATCH_EPOCHS, "step", seed,
                                      f"seed {seed} scratch_e"))

    wall = time.perf_counter() - started
    write_atomic(a.out, {"profile": "sample", "torch": torch.__version__,
                         "threads": torch.get_num_threads(), "wall_s": round(wall, 1),
                         "machine": cpu_model(), "runs": runs})
    for column in ("unpruned", "finetune", "lrw", "slr", "clr", "scratch_e"):
        accs = [r["test_acc"] for r in runs if r["column"] == column]
        sd = np.std(accs, ddof=1) if len(accs) > 1 else 0.0
        print(f"{column:10s} test {100 * np.mean(accs):.2f} +- {100 * sd:.2f} %", file=sys.stderr)
    print(f"wrote {a.out} ({wall:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
