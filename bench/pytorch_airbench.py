#!/usr/bin/env python3
"""The airbench recipe (issue 18) in PyTorch on the CPU, in float32: the time and accuracy to beat.

A re-implementation of airbench94's training (KellerJordan/cifar10-airbench, legacy/airbench94.py; airbench93 is
the same recipe with widths 64/128/128 over 11 epochs), written from its recipe for this machine: float32
instead of float16, no torch.compile, no CUDA, CIFAR-10 read from the binary files. Everything that decides the
result is airbench's:

- network: 2×2 whitening conv 3→24 (frozen weights, bias trained for the first 3 epochs) → GELU → three blocks
  [3×3 conv (no bias) → 2×2 max-pool → batch norm → GELU → 3×3 conv → batch norm → GELU] of widths
  64/256/256 → 3×3 max-pool → linear 256→10 (no bias) → ×1/9. Batch norm: eps 1e-12, momentum 0.4 (PyTorch's
  convention), weight fixed at 1, bias trained. Init: PyTorch's default, then the first C_in filters of every
  3×3 conv set to the identity (dirac); whitening from the patch covariance of the first 5,000 normalised images.
- data: normalised with airbench's mean/std; half the images mirrored once, a random translation of up to
  2 px (reflect padding) every epoch, every image mirrored on odd epochs; batches of 1024, the last partial
  one dropped.
- optimisation: cross-entropy with label smoothing 0.2 summed over the batch; SGD, Nesterov momentum 0.85,
  batch-norm biases at 64× the lr; lr factor 0.2 → 1 → 0.07 (peak at 23% of the steps); lookahead every 5
  steps with decay 0.95⁵·(step/total)³, and the weights set to the average at the end.
- evaluation: test accuracy after each epoch (no TTA; not counted in the training time), and at the end with
  airbench's test-time augmentation (6 views; counted, as airbench counts it).

    python3 bench/pytorch_airbench.py [--model airbench94|airbench93] [--threads N] [--epochs X] [--seed N]
                                      [--train-limit N] [--test-limit N] [--eval-every N] [--data DIR] [--json FILE]

Prints one line per epoch and a summary; --json also writes the summary as JSON.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RECORD_BYTES = 1 + 3 * 32 * 32
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

MODELS = {
    'airbench94': {'widths': (64, 256, 256), 'epochs': 9.9},
    'airbench93': {'widths': (64, 128, 128), 'epochs': 11.0},
}
HYPER = {
    'batch_size': 1024, 'lr': 11.5, 'momentum': 0.85, 'weight_decay': 0.0153, 'bias_scaler': 64.0,
    'label_smoothing': 0.2, 'whiten_bias_epochs': 3, 'bn_momentum': 0.4, 'bn_eps': 1e-12, 'scale': 1 / 9,
    'translate': 2, 'whiten_eps': 5e-4, 'whiten_images': 5000, 'lr_peak': 0.23, 'lr_start': 0.2, 'lr_end': 0.07,
    'lookahead_every': 5,
}


# ---------------------------------------------------------------------------------------------- data
def read_batches(data_dir, names):
    records = np.concatenate([np.fromfile(os.path.join(data_dir, n), dtype=np.uint8).reshape(-1, RECORD_BYTES) for n in names])
    images = torch.from_numpy(np.ascontiguousarray(records[:, 1:])).view(-1, 3, 32, 32)
    return images, torch.from_numpy(records[:, 0].astype(np.int64))


def normalise(images_u8):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images_u8.float() / 255 - mean) / std


def mirror_random_half(images, generator):
    """Each image mirrored left-right with probability 1/2 (once, before training)."""
    chosen = torch.rand(len(images), generator=generator) < 0.5
    out = images.clone()
    out[chosen] = images[chosen].flip(-1)
    return out


def random_translate(padded, pad, generator):
    """The 32×32 crop of each padded image at a random shift in [−pad, pad]² (one per image)."""
    n = padded.shape[0]
    shifts = torch.randint(-pad, pad + 1, (n, 2), generator=generator)
    out = torch.empty(n, 3, 32, 32)
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            rows = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().view(-1)
            if len(rows):
                out[rows] = padded[rows, :, pad + dy:pad + dy + 32, pad + dx:pad + dx + 32]
    return out


# ---------------------------------------------------------------------------------------------- network
def frozen_scale_batch_norm(channels):
    bn = nn.BatchNorm2d(channels, eps=HYPER['bn_eps'], momentum=HYPER['bn_momentum'])
    bn.weight.requires_grad_(False)
    return bn


def conv3x3(cin, cout):
    conv = nn.Conv2d(cin, cout, 3, padding='same', bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])  # the first C_in filters pass their input channel through
    return conv


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.norm1 = frozen_scale_batch_norm(cout)
        self.conv2 = conv3x3(cout, cout)
        self.norm2 = frozen_scale_batch_norm(cout)

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class Airbench(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        with torch.no_grad():
            self.whiten.bias.zero_()
        self.block1 = Block(24, widths[0])
        self.block2 = Block(widths[0], widths[1])
        self.block3 = Block(widths[1], widths[2])
        self.head = nn.Linear(widths[2], 10, bias=False)

    def forward(self, x):
        x = F.gelu(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        x = F.max_pool2d(x, 3).flatten(1)
        return self.head(x) * HYPER['scale']


def whitening_weights(images):
    """24 filters: the eigenvectors of the 2×2×3 patches' uncentred covariance / √(eigenvalue + eps), largest first, and their negatives."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3 * 2 * 2)
    covariance = patches.T @ patches / patches.shape[0]
    values, vectors = torch.linalg.eigh(covariance, UPLO='U')
    values, vectors = values.flip(0), vectors.T.flip(0)
    filters = (vectors / torch.sqrt(values + HYPER['whiten_eps']).view(-1, 1)).view(12, 3, 2, 2)
    return torch.cat((filters, -filters))


# ---------------------------------------------------------------------------------------------- training
class Lookahead:
    """The average of every float tensor of the state_dict (running statistics included) the weights are reset to."""

    def __init__(self, model):
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model, decay):
        for (key, current) in model.state_dict().items():
            if current.dtype == torch.float32:
                self.average[key].lerp_(current, 1 - decay)
                current.copy_(self.average[key])


def lr_factor(step, total):
    peak = int(total * HYPER['lr_peak'])
    if step < peak:
        frac = step / peak
        return HYPER['lr_start'] * (1 - frac) + 1.0 * frac
    frac = (step - peak) / (total - peak)
    return 1.0 * (1 - frac) + HYPER['lr_end'] * frac


def tta_logits(model, images):
    """0.5·mirror(x) + 0.5·mean(mirror(up-left), mirror(down-right)), mirror(v) = ½·f(v) + ½·f(flip v)."""
    def mirror(v):
        return 0.5 * model(v) + 0.5 * model(v.flip(-1))
    padded = F.pad(images, (1, 1, 1, 1), 'reflect')
    translated = torch.stack([mirror(padded[:, :, 0:32, 0:32]), mirror(padded[:, :, 2:34, 2:34])]).mean(0)
    return 0.5 * mirror(images) + 0.5 * translated


def accuracy(model, images, labels, tta, chunk=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), chunk):
            x = images[start:start + chunk]
            logits = tta_logits(model, x) if tta else model(x)
            correct += (logits.argmax(1) == labels[start:start + chunk]).sum().item()
    model.train()
    return correct / len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(MODELS), default='airbench94')
    parser.add_argument('--data', default=os.environ.get('CIFAR10_DIR', 'data/cifar-10-batches-bin'))
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--epochs', type=float, help="default: the model's (9.9 for airbench94, 11 for airbench93)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-limit', type=int, help='use only the first N training images')
    parser.add_argument('--test-limit', type=int, help='use only the first N test images')
    parser.add_argument('--eval-every', type=int, default=1, help='test accuracy (no TTA) every N epochs; 0: only at the end')
    parser.add_argument('--channels-last', action='store_true', help='NHWC memory format (as airbench on GPUs)')
    parser.add_argument('--json', help='also write the summary to this file')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    spec = MODELS[args.model]
    epochs = args.epochs if args.epochs is not None else spec['epochs']
    batch = HYPER['batch_size']

    train_u8, train_labels = read_batches(args.data, [f'data_batch_{i}.bin' for i in range(1, 6)])
    test_u8, test_labels = read_batches(args.data, ['test_batch.bin'])
    if args.train_limit:
        train_u8, train_labels = train_u8[:args.train_limit], train_labels[:args.train_limit]
    if args.test_limit:
        test_u8, test_labels = test_u8[:args.test_limit], test_labels[:args.test_limit]
    memory = torch.channels_last if args.channels_last else torch.contiguous_format
    test_images = normalise(test_u8).contiguous(memory_format=memory)

    model = Airbench(spec['widths']).to(memory_format=memory)
    momentum = HYPER['momentum']
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = HYPER['lr'] / kilostep_scale
    wd = HYPER['weight_decay'] * batch / kilostep_scale
    lr_biases = lr * HYPER['bias_scaler']
    norm_biases = [p for name, p in model.named_parameters() if 'norm' in name and p.requires_grad]
    others = [p for name, p in model.named_parameters() if 'norm' not in name and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                                 dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=momentum, nesterov=True)
    steps_per_epoch = len(train_u8) // batch
    if steps_per_epoch < 1:
        parser.error(f'--train-limit {len(train_u8)} is less than one batch of {batch}')
    total_steps = math.ceil(steps_per_epoch * epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps))
    decays = 0.95 ** 5 * (torch.arange(total_steps + 1) / total_steps) ** 3
    # As airbench: the average starts from the weights before the whitening init (its only effect is a ~1e-6
    # pull of the frozen whitening weights toward their random init at the first update).
    lookahead = Lookahead(model)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYPER['label_smoothing'], reduction='none')

    print(f'{args.model}: widths {spec["widths"]}, {sum(p.numel() for p in model.parameters())} parameters; '
          f'{len(train_u8)} training images, {len(test_u8)} test; {epochs} epochs = {total_steps} steps of {batch}; '
          f'{args.threads} threads, torch {torch.__version__}, seed {args.seed}', flush=True)

    started = time.perf_counter()
    train_seconds = 0.0
    t0 = time.perf_counter()
    with torch.no_grad():
        model.whiten.weight.copy_(whitening_weights(normalise(train_u8[:HYPER['whiten_images']])))
    pad = HYPER['translate']
    padded = F.pad(mirror_random_half(normalise(train_u8), generator), (pad,) * 4, 'reflect')
    train_seconds += time.perf_counter() - t0

    step = 0
    epochs_log = []
    for epoch in range(math.ceil(epochs)):
        t0 = time.perf_counter()
        model.whiten.bias.requires_grad_(epoch < HYPER['whiten_bias_epochs'])
        images = random_translate(padded, pad, generator)
        if epoch % 2 == 1:
            images = images.flip(-1)
        images = images.contiguous(memory_format=memory)
        order = torch.randperm(len(images), generator=generator)
        model.train()
        for i in range(steps_per_epoch):
            index = order[i * batch:(i + 1) * batch]
            outputs = model(images[index])
            loss = loss_fn(outputs, train_labels[index]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % HYPER['lookahead_every'] == 0:
                lookahead.update(model, decays[step].item())
            if step >= total_steps:
                lookahead.update(model, 1.0)
                break
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        train_acc = (outputs.detach().argmax(1) == train_labels[index]).float().mean().item()
        line = {'epoch': epoch + 1, 'steps': step, 'train_loss': loss.item() / len(index), 'train_acc': train_acc,
                'epoch_seconds': epoch_seconds, 'train_seconds': train_seconds,
                'images_per_second': min(steps_per_epoch, step - (epoch * steps_per_epoch)) * batch / epoch_seconds}
        if args.eval_every and (epoch + 1) % args.eval_every == 0:
            line['test_acc'] = accuracy(model, test_images, test_labels, tta=False)
        epochs_log.append(line)
        print(f"epoch {epoch + 1:2d}  steps {step:4d}  loss {line['train_loss']:.4f}  train_acc {train_acc:.4f}  "
              + (f"test_acc {line['test_acc']:.4f}  " if 'test_acc' in line else '')
              + f"time {epoch_seconds:.1f}s  images/s {line['images_per_second']:.0f}  training so far {train_seconds:.1f}s", flush=True)

    t0 = time.perf_counter()
    tta_acc = accuracy(model, test_images, test_labels, tta=True)
    tta_seconds = time.perf_counter() - t0
    summary = {
        'model': args.model, 'epochs': epochs, 'steps': total_steps, 'threads': args.threads, 'seed': args.seed,
        'train_images': len(train_u8), 'test_images': len(test_u8), 'torch': torch.__version__,
        'final_test_acc_tta': tta_acc, 'train_seconds': train_seconds, 'tta_seconds': tta_seconds,
        'airbench_time_seconds': train_seconds + tta_seconds, 'wall_seconds': time.perf_counter() - started,
        'epochs_log': epochs_log,
    }
    print(f"TTA test accuracy {tta_acc:.4f}  (tta {tta_seconds:.1f}s)  training {train_seconds:.1f}s  "
          f"airbench time (training + TTA) {summary['airbench_time_seconds']:.1f}s  wall {summary['wall_seconds']:.1f}s", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)


if __name__ == '__main__':
    main()
