#!/usr/bin/env python3
"""PyTorch reference for `npm run bench`: the tutorial CNN, the same training step as the trainer.

One step = forward, cross-entropy, backward, Adam (lr 1e-3) on one batch, exactly what a tfjs worker computes
plus what the coordinator does (sum, Adam). Images come from the real CIFAR-10 files when --data names a folder
holding data_batch_1.bin (else random data of the real shapes), picked in a fixed shuffled order.

Two ways to run it:
  python3 bench/pytorch_step.py --batch 128 --threads 1 [--images 4096] [--warmup 2] [--data DIR]
      measures one point and prints one JSON line.
  python3 bench/pytorch_step.py --serve [--data DIR]
      reads one JSON request per line from stdin and answers one JSON line each, so the benchmark can
      interleave PyTorch and tfjs runs without paying for `import torch` every time:
        {"kind": "train", "batch": 128, "threads": 1, "images": 4096, "warmup": 2}
        {"kind": "eval", "threads": 1, "images": 10000, "batch": 500}
        {"kind": "info"}
Every answer carries maxRssKB (peak RSS of this process so far, KB).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE_BYTES = 3072
RECORD_BYTES = 1 + IMAGE_BYTES


class TutorialCnn(nn.Module):
    """The PyTorch CIFAR-10 tutorial's network with 3×3 kernels: 81,302 parameters (src/model/tutorial-cnn.ts)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 6 * 6, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def load_file(path):
    """(images as bytes N×3×32×32, labels int64) from one CIFAR-10 binary file. Bytes, as the trainer keeps them:
    each step converts its batch to float32 in [0, 1], as a tfjs worker does."""
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    images = torch.from_numpy(np.ascontiguousarray(records[:, 1:])).reshape(-1, 3, 32, 32)
    return images, labels


def random_set(generator):
    images = torch.randint(0, 256, (10000, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return images, torch.randint(0, 10, (10000,), generator=generator)


def to_unit(images):
    return images.float().div_(255.0)


def load_sets(data_dir):
    """Training images (data_batch_1.bin) and test images (test_batch.bin), or random ones of the same shapes."""
    train_file = os.path.join(data_dir, 'data_batch_1.bin') if data_dir else None
    test_file = os.path.join(data_dir, 'test_batch.bin') if data_dir else None
    generator = torch.Generator().manual_seed(1)
    if train_file and os.path.isfile(train_file):
        train, source = load_file(train_file), 'cifar-10'
    else:
        train, source = random_set(generator), 'random'
    if test_file and os.path.isfile(test_file):
        test = load_file(test_file)
    else:
        test = random_set(generator)
    return train, test, source


def max_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Reference:
    def __init__(self, data_dir):
        (self.train_x, self.train_y), (self.test_x, self.test_y), self.source = load_sets(data_dir)
        self.order = torch.randperm(self.train_x.shape[0], generator=torch.Generator().manual_seed(2))

    def train(self, batch, threads, images, warmup):
        """Images/s of forward + cross-entropy + backward + Adam at this batch size, warm-up steps excluded."""
        torch.set_num_threads(threads)
        torch.manual_seed(1)
        model = TutorialCnn()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps = max(1, -(-images // batch))
        count = self.train_x.shape[0]
        position = 0
        started = None
        loss_sum = 0.0
        for step in range(warmup + steps):
            if step == warmup:
                started = time.perf_counter()
            if position + batch > count:
                position = 0
            index = self.order[position:position + batch]
            position += batch
            x = to_unit(self.train_x.index_select(0, index))
            y = self.train_y.index_select(0, index)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
        seconds = time.perf_counter() - started
        return {
            'kind': 'train', 'batch': batch, 'threads': threads, 'steps': steps, 'warmup': warmup,
            'images': steps * batch, 'seconds': seconds, 'imagesPerSecond': steps * batch / seconds,
            'msPerStep': seconds * 1000 / steps, 'meanLoss': loss_sum / (warmup + steps), 'maxRssKB': max_rss_kb(),
        }

    def evaluate(self, threads, images, batch):
        """Seconds to classify `images` test images (forward, cross-entropy sum, argmax) at this batch size."""
        torch.set_num_threads(threads)
        torch.manual_seed(1)
        model = TutorialCnn().eval()
        images = min(images, self.test_x.shape[0])
        with torch.no_grad():
            model(to_unit(self.test_x[:batch]))  # warm-up, excluded
            started = time.perf_counter()
            correct = 0
            loss_sum = 0.0
            for start in range(0, images, batch):
                x = to_unit(self.test_x[start:start + batch])
                y = self.test_y[start:start + batch]
                logits = model(x)
                loss_sum += F.cross_entropy(logits, y, reduction='sum').item()
                correct += int((logits.argmax(1) == y).sum())
            seconds = time.perf_counter() - started
        return {
            'kind': 'eval', 'threads': threads, 'images': images, 'batch': batch, 'seconds': seconds,
            'accuracy': correct / images, 'maxRssKB': max_rss_kb(),
        }

    def info(self):
        config = torch.__config__.show()
        blas = next((part.split('=', 1)[1] for part in config.replace(',', ' ').split() if part.startswith('BLAS_INFO=')), 'unknown')
        return {
            'kind': 'info', 'torch': torch.__version__, 'python': sys.version.split()[0], 'executable': sys.executable,
            'blas': blas, 'data': self.source, 'maxRssKB': max_rss_kb(),
        }


def answer(reference, request):
    kind = request.get('kind')
    if kind == 'train':
        return reference.train(int(request['batch']), int(request['threads']), int(request.get('images', 4096)), int(request.get('warmup', 2)))
    if kind == 'eval':
        return reference.evaluate(int(request['threads']), int(request.get('images', 10000)), int(request.get('batch', 500)))
    if kind == 'info':
        return reference.info()
    raise ValueError(f'unknown request kind {kind!r}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--serve', action='store_true', help='answer JSON requests from stdin, one per line')
    parser.add_argument('--data', default=os.environ.get('CIFAR10_DIR', ''), help='CIFAR-10 binary folder (else random data)')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--images', type=int, default=4096, help='images per measurement, warm-up excluded')
    parser.add_argument('--warmup', type=int, default=2, help='steps before the clock starts')
    parser.add_argument('--eval', action='store_true', help='time the evaluation of 10,000 test images instead')
    args = parser.parse_args()

    reference = Reference(args.data)
    if not args.serve:
        if args.eval:
            print(json.dumps(reference.evaluate(args.threads, 10000, 500)))
        else:
            print(json.dumps(reference.train(args.batch, args.threads, args.images, args.warmup)))
        return
    print(json.dumps({**reference.info(), 'kind': 'ready'}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = answer(reference, json.loads(line))
        except Exception as error:  # answer, never die: the benchmark reports it
            reply = {'kind': 'error', 'message': f'{type(error).__name__}: {error}'}
        print(json.dumps(reply), flush=True)


if __name__ == '__main__':
    main()
