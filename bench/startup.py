"""Start-up of the commands that run no node code, against `ffmpeg -version`, runs interleaved.

Each command runs REPEATS times, the commands taking turns; per run: CPU (user + system of that
child, from wait4), wall time and peak RSS. The plugin cache is a temporary file, warmed once
before the runs (and removed before each run of the "cold" row, which rebuilds it).

  /usr/bin/python3 bench/startup.py [REPEATS]     (from the repository root, after scripts/build)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

REEL = os.path.abspath("build/bin/reel")
ENGINE = os.path.abspath("build/bin/reel-engine")


def run(command, env):
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    cache = os.path.join(tempfile.mkdtemp(), "plugins.json")
    env = dict(os.environ, REEL_PLUGIN_CACHE=cache)
    subprocess.run([REEL, "plugins"], check=True, stdout=subprocess.DEVNULL, env=env)

    def cold(command):
        def prepare():
            if os.path.exists(cache):
                os.remove(cache)
        return command, prepare

    jobs = {
        "ffmpeg -version": (["ffmpeg", "-version"], None),
        "reel --version": ([REEL, "--version"], None),
        "reel validate graphs/demo.json": ([REEL, "validate", "graphs/demo.json"], None),
        "reel plugins": ([REEL, "plugins"], None),
        "reel describe upscaler.esrgan": ([REEL, "describe", "upscaler.esrgan"], None),
        "reel-engine --version (libtorch loaded)": ([ENGINE, "--version"], None),
        "reel plugins, cold cache (rebuilt)": cold([REEL, "plugins"]),
    }
    samples = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, (command, prepare) in jobs.items():
            if prepare:
                prepare()
            samples[name].append(run(command, env))
        # The cold row removed the cache: warm it again for the next round's warm rows.
        subprocess.run([REEL, "plugins"], check=True, stdout=subprocess.DEVNULL, env=env)

    base = statistics.median(s[0] for s in samples["ffmpeg -version"])
    print(f"medians of {repeats} interleaved runs")
    print(f"{'command':42} {'CPU ms':>8} {'x ffmpeg':>9} {'wall ms':>8} {'peak RSS MiB':>13}")
    for name, runs in samples.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        rss = statistics.median(r[2] for r in runs) / 1024
        print(f"{name:42} {cpu * 1000:8.1f} {cpu / base:9.2f} {wall * 1000:8.1f} {rss:13.1f}")


if __name__ == "__main__":
    main()
