#!/usr/bin/python3
"""The speed reference for reel_rife_bench: IFNet v4.6 in PyTorch's Python API
(tests/fixtures/ifnet.py, the implementation the tests check reel against), same weights, same pair.

  rife_pytorch.py CHECKPOINT.pth FRAMES.rgb WIDTH HEIGHT SCALE REPEATS [--threads N]
                  [--channels-last] [--compare REEL_OUTPUT.f32]
Prints "seconds S" per pair (pad, network at t = 0.5, crop), the median, the peak RSS of one pair
above the RSS with the model loaded, and with --compare the largest absolute difference from
reel's float output.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import ifnet  # noqa: E402


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("frames")
    p.add_argument("width", type=int)
    p.add_argument("height", type=int)
    p.add_argument("scale", type=float)
    p.add_argument("repeats", type=int)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compare")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net = ifnet.load(a.checkpoint)
    pair = np.fromfile(a.frames, dtype=np.uint8).reshape(2, a.height, a.width, 3)
    m = max(32, int(32 / a.scale))
    hp, wp = (a.height + m - 1) // m * m, (a.width + m - 1) // m * m

    def tensor(f):
        x = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        x = F.pad(x, (0, wp - a.width, 0, hp - a.height))
        return x.contiguous(memory_format=torch.channels_last) if a.channels_last else x

    seconds = []
    loaded = status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with torch.inference_mode():
        for _ in range(a.repeats):
            start = time.perf_counter()
            y = net(tensor(pair[0]), tensor(pair[1]), torch.full((1, 1, hp, wp), 0.5), a.scale)
            y = y[0, :, :a.height, :a.width]
            seconds.append(time.perf_counter() - start)
            print("seconds %.4f" % seconds[-1], flush=True)
    print("pair_peak_bytes %d" % (status_bytes("VmHWM") - loaded))
    print("median %.4f (PyTorch %s, %dx%d, scale %g, threads %d)" % (
        statistics.median(seconds), torch.__version__, a.width, a.height, a.scale, torch.get_num_threads()))
    if a.compare:
        ours = np.fromfile(a.compare, dtype=np.float32).reshape(a.height, a.width, 3)
        print("max abs diff %.3g" % np.abs(y.permute(1, 2, 0).numpy() - ours).max())


if __name__ == "__main__":
    main()
