"""reel's media path against the ffmpeg tool doing the same work, runs interleaved.

Two jobs, both from a lossless RGB (FFV1 bgr0) input so neither side decodes a lossy stream:
  encode  720p, 300 frames, RGB -> yuv420p (BT.709, limited range, bicubic, accurate rounding,
          full chroma interpolation, as encoder.ffmpeg converts) -> H.264 crf 23, preset medium
  resize  640x360 -> 1280x720 bicubic (same swscale flags) -> FFV1 bgr0
CPU is user + system time of the child process (both are multi-threaded; wall time is printed too).
Outputs are compared by the decoded frames' MD5s (ffmpeg -f framemd5), and byte for byte: the
whole files, and the video bitstreams copied out of their containers.

  /usr/bin/python3 bench/media_vs_ffmpeg.py [REPEATS]     (from the repository root, after scripts/build)
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REEL = os.path.abspath("build/bin/reel")
FLAGS = "bicubic+accurate_rnd+full_chroma_int"


def run(command):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def frame_md5s(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "framemd5", "-"], check=True,
                         capture_output=True, text=True).stdout
    return [line.split(",")[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def same_bytes(a, b):
    with open(a, "rb") as x, open(b, "rb") as y:
        return x.read() == y.read()


def bitstream(path):
    """The video stream's packets as they are in the file, without the container."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:v", "-c", "copy", "-f", "data", "-"],
                          check=True, capture_output=True).stdout


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = tempfile.mkdtemp()
    big = os.path.join(work, "in720.mkv")
    small = os.path.join(work, "in360.mkv")
    for path, size, frames in ((big, "1280x720", 300), (small, "640x360", 300)):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30",
                        "-frames:v", str(frames), "-pix_fmt", "bgr0", "-c:v", "ffv1", path], check=True)

    def graph(name, nodes):
        path = os.path.join(work, name + ".json")
        with open(path, "w") as f:
            json.dump({"version": 1, "nodes": nodes}, f)
        return path

    jobs = {
        "encode 720p H.264": (
            [REEL, "run", "--no-progress", "-y", graph("encode", [
                {"id": "src", "type": "source.video", "params": {"path": big}},
                {"id": "enc", "type": "encoder.ffmpeg", "inputs": {"in": "src.out"},
                 "params": {"path": os.path.join(work, "reel.mp4"), "crf": 23, "preset": "medium",
                            "audio": "none"}}])],
            ["ffmpeg", "-v", "error", "-y", "-i", big, "-vf",
             f"scale=out_color_matrix=bt709:out_range=tv:flags={FLAGS},format=yuv420p",
             "-c:v", "libx264", "-crf", "23", "-preset", "medium", "-color_primaries", "bt709",
             "-color_trc", "bt709", "-colorspace", "bt709", "-movflags", "+faststart",
             os.path.join(work, "ffmpeg.mp4")],
            "reel.mp4", "ffmpeg.mp4"),
        "resize 360p -> 720p bicubic": (
            [REEL, "run", "--no-progress", "-y", graph("resize", [
                {"id": "src", "type": "source.video", "params": {"path": small}},
                {"id": "up", "type": "upscaler.resize", "inputs": {"in": "src.out"},
                 "params": {"width": 1280, "height": 720, "filter": "bicubic"}},
                {"id": "enc", "type": "encoder.ffmpeg", "inputs": {"in": "up.out"},
                 "params": {"path": os.path.join(work, "reel.mkv"), "codec": "ffv1", "audio": "none"}}])],
            ["ffmpeg", "-v", "error", "-y", "-i", small, "-vf", f"scale=1280:720:flags={FLAGS}",
             "-pix_fmt", "bgr0", "-c:v", "ffv1", os.path.join(work, "ffmpeg.mkv")],
            "reel.mkv", "ffmpeg.mkv"),
    }
    print(f"{repeats} interleaved runs each, medians; {os.cpu_count()} cores")
    print("| job | reel CPU s | ffmpeg CPU s | CPU ratio | reel wall s | ffmpeg wall s | wall ratio | frames identical "
          "| file identical | bitstream identical |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (reel, ffmpeg, reel_out, ffmpeg_out) in jobs.items():
        times = {"reel": [], "ffmpeg": []}
        for _ in range(repeats):
            times["reel"].append(run(reel))
            times["ffmpeg"].append(run(ffmpeg))
        cpu = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
        wall = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
        a, b = frame_md5s(os.path.join(work, reel_out)), frame_md5s(os.path.join(work, ffmpeg_out))
        same = sum(x == y for x, y in zip(a, b))
        paths = os.path.join(work, reel_out), os.path.join(work, ffmpeg_out)
        files = "yes" if same_bytes(*paths) else "no"
        streams = "yes" if bitstream(paths[0]) == bitstream(paths[1]) else "no"
        print(f"| {name} | {cpu['reel']:.2f} | {cpu['ffmpeg']:.2f} | {cpu['reel'] / cpu['ffmpeg']:.2f} | "
              f"{wall['reel']:.2f} | {wall['ffmpeg']:.2f} | {wall['reel'] / wall['ffmpeg']:.2f} | "
              f"{same}/{len(a)} (ffmpeg {len(b)}) | {files} | {streams} |")


if __name__ == "__main__":
    main()
