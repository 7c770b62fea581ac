#!/usr/bin/python3
"""The speed reference for reel_esrgan_bench: the same networks and weights in PyTorch's Python API.

  esrgan_pytorch.py CHECKPOINT.pth WIDTH HEIGHT REPEATS [--tile T --tile-pad P] [--threads N]
                    [--channels-last] [--compare REEL_OUTPUT.f32]
Same input formula, same tiling rule; prints "seconds S" per pass and the median, and with
--compare the largest absolute difference from reel's float output.
"""
import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class DenseBlock(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, 1, 1))

    def forward(self, x):
        feats = [x]
        for i in range(4):
            feats.append(F.leaky_relu(getattr(self, f"conv{i + 1}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, blocks, nf=64, gc=32):
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.scale = 4

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SRVGG(nn.Module):
    def __init__(self, convs, nf=64, scale=4):
        super().__init__()
        layers = [nn.Conv2d(3, nf, 3, 1, 1), nn.PReLU(nf)]
        for _ in range(convs):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(nf)]
        layers.append(nn.Conv2d(nf, 3 * scale * scale, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x):
        return F.pixel_shuffle(self.body(x), self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def build(state):
    if "conv_first.weight" in state:
        blocks = len({k.split(".")[1] for k in state if k.startswith("body.")})
        return RRDBNet(blocks)
    convs = sum(1 for k, v in state.items() if k.startswith("body.") and v.dim() == 4) - 2
    return SRVGG(convs)


def tiled(net, x, tile, pad):
    _, _, h, w = x.shape
    s = net.scale
    if tile <= 0 or (tile >= h and tile >= w):
        return net(x)
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0, py1, px1 = max(y0 - pad, 0), max(x0 - pad, 0), min(y1 + pad, h), min(x1 + pad, w)
            r = net(x[:, :, py0:py1, px0:px1])
            if out is None:
                out = r.new_empty(x.shape[0], r.shape[1], h * s, w * s)
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = \
                r[:, :, (y0 - py0) * s:(y1 - py0) * s, (x0 - px0) * s:(x1 - px0) * s]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("width", type=int)
    p.add_argument("height", type=int)
    p.add_argument("repeats", type=int)
    p.add_argument("--tile", type=int, default=0)
    p.add_argument("--tile-pad", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compare")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    state = torch.load(a.checkpoint, map_location="cpu")["params_ema"]
    net = build(state)
    net.load_state_dict(state)
    net.eval()
    yy = torch.arange(a.height, dtype=torch.float32).view(1, 1, -1, 1)
    xx = torch.arange(a.width, dtype=torch.float32).view(1, 1, 1, -1)
    cc = torch.arange(3, dtype=torch.float32).view(1, 3, 1, 1)
    x = (torch.sin(xx * 0.05 + cc) * torch.cos(yy * 0.07 - cc) * 0.5 + 0.5).contiguous()
    if a.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    seconds = []
    with torch.inference_mode():
        for _ in range(a.repeats):
            start = time.perf_counter()
            y = tiled(net, x, a.tile, a.tile_pad)
            seconds.append(time.perf_counter() - start)
            print(f"seconds {seconds[-1]:.4f}", flush=True)
    print(f"median {statistics.median(seconds):.4f} (PyTorch {torch.__version__}, threads {torch.get_num_threads()})")
    if a.compare:
        reel = np.fromfile(a.compare, dtype=np.float32).reshape(y.shape[1:])
        print(f"max abs difference from reel {np.abs(reel - y[0].numpy()).max():.3g}")


if __name__ == "__main__":
    main()
