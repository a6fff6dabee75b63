"""Python PyTorch eager baseline for benchmarks/train_speed.cpp (run by run_train_speed.sh).

Run with /usr/bin/python3 (Debian's python3-torch and python3-torchvision: the same 1.13
release as the LibTorch the C++ side links). Prints one JSON object:

- compute: images/s of forward + backward + Adam step on one in-memory batch, the network in
  its default NCHW layout and in channels_last;
- epoch: one epoch written as users usually write it: a Dataset with per-sample torchvision
  transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) and a
  DataLoader, for each --workers value.

torchvision.datasets.CIFAR10 reads the Python pickle version of CIFAR-10, which we do not
keep; BinaryCifar10 below reads the binary batches (label byte + 3072 pixel bytes) into the
same uint8 HWC array CIFAR10 holds and returns PIL images from __getitem__ as it does.
The network mirrors plugin/src/models/resnet.cpp; the parameter counts are compared.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms


def conv(cin, cout, k, stride):
    return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv1 = conv(cin, cout, k, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv(cout, cout, k, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    def __init__(self, base, kernel, multiplier, blocks=3, stages=3, channels=3, classes=10):
        super().__init__()
        widths = [base * multiplier**s for s in range(stages)]
        self.stem = conv(channels, base, 3, 1)
        self.stem_bn = nn.BatchNorm2d(base)
        layers, cin = [], base
        for s in range(stages):
            for b in range(blocks):
                layers.append(BasicBlock(cin, widths[s], kernel, 2 if s > 0 and b == 0 else 1))
                cin = widths[s]
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        return self.fc(self.blocks(x).mean((2, 3)))


class BinaryCifar10(torch.utils.data.Dataset):
    """CIFAR-10 from the binary batches, returning (PIL image, label) like torchvision's."""

    def __init__(self, root, limit, transform):
        records = []
        for i in range(1, 6):
            raw = np.fromfile(os.path.join(root, f"data_batch_{i}.bin"), dtype=np.uint8)
            records.append(raw.reshape(-1, 3073))
        records = np.concatenate(records)
        if limit:
            records = records[:limit]
        self.targets = records[:, 0].astype(np.int64).tolist()
        self.data = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        image = self.transform(Image.fromarray(self.data[index]))
        return image, self.targets[index]


def compute_speed(net, batch, warmup, iters, lr, weight_decay, channels_last):
    net.train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    x = torch.randn(batch, 3, 32, 32)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return batch * iters / (time.perf_counter() - start)


def epoch_time(args, workers):
    dataset = BinaryCifar10(args.data, args.train_limit, None)
    pixels = dataset.data.reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = pixels.mean(0).tolist(), pixels.std(0).tolist()
    dataset.transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=False,
    )
    torch.manual_seed(0)
    net = ResNet(args.B, args.K, args.M)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = math.ceil(len(dataset) / args.batch)
    total, seen = 0.0, 0
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        seen += len(y)
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "images": seen,
        "seconds": seconds,
        "images_per_second": seen / seconds,
        "train_loss": total / seen,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/cifar-10-batches-bin")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--workers", default="0,2", help="DataLoader num_workers values to try")
    parser.add_argument("--B", type=int, default=16)
    parser.add_argument("--K", type=int, default=3)
    parser.add_argument("--M", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--skip-epoch", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = ResNet(args.B, args.K, args.M)
    out = {
        "program": "train_speed_torch.py",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": f"B{args.B}_K{args.K}_M{args.M}",
        "batch": args.batch,
        "parameters": sum(p.numel() for p in net.parameters()),
        "compute_images_per_second": {
            "nchw": compute_speed(
                net, args.batch, args.warmup, args.iters, args.lr, args.weight_decay, False
            ),
            "channels_last": compute_speed(
                ResNet(args.B, args.K, args.M),
                args.batch,
                args.warmup,
                args.iters,
                args.lr,
                args.weight_decay,
                True,
            ),
        },
    }
    if not args.skip_epoch:
        out["epochs"] = [epoch_time(args, int(w)) for w in args.workers.split(",") if w != ""]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
