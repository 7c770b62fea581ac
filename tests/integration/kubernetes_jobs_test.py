"""The Kubernetes job files in deploy/kubernetes parse, say what reel needs (an Indexed Job whose
permanent failures are not retried, a join Job), and their commands, run here with the index
variable set and the volume's path mapped to a folder, split a video and join it back into exactly
the frames of one run.

Usage: python3 kubernetes_jobs_test.py REEL PLUGIN_DIR SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import yaml

REEL, PLUGIN_DIR, SOURCE_DIR = sys.argv[1:4]
DEPLOY = os.path.join(SOURCE_DIR, "deploy", "kubernetes")

# reel's exit codes (docs/errors.md): worth retrying, and not.
RETRYABLE = {69, 74, 75, 124}
PERMANENT = {64, 65, 66, 70, 78}


def job(file_name):
    with open(os.path.join(DEPLOY, file_name)) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    assert len(documents) == 1, file_name
    return documents[0]


def container(manifest):
    containers = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def codes(manifest, action):
    return {code for rule in manifest["spec"]["podFailurePolicy"]["rules"] if rule["action"] == action
            for code in rule["onExitCodes"]["values"]}


def run_container(manifest, volume_dir, index=None):
    """Runs the container's command as its pod would, with each volume's mount path mapped to
    volume_dir and the index as the Indexed Job sets it."""
    c = container(manifest)
    mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]

    def local(text):
        for mount in mounts:
            if text == mount or text.startswith(mount + "/"):
                return volume_dir + text[len(mount):]
        return text

    command = [REEL if c["command"][0] == "reel" else c["command"][0]] + [local(a) for a in c["command"][1:]]
    env = dict(os.environ, REEL_PLUGIN_PATH=PLUGIN_DIR)
    env.update({e["name"]: local(e["value"]) for e in c.get("env", [])})
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    return subprocess.run(command, env=env, capture_output=True, text=True)


def frame_hashes(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "framemd5", "-"], capture_output=True,
                         text=True, check=True).stdout
    return [line.split(",")[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]


class KubernetesJobs(unittest.TestCase):
    def test_the_shard_job_is_indexed_and_retries_only_what_a_retry_can_mend(self):
        shards = job("shard-job.yaml")
        self.assertEqual(shards["kind"], "Job")
        spec = shards["spec"]
        self.assertEqual(spec["completionMode"], "Indexed")
        self.assertGreaterEqual(spec["completions"], 1)
        self.assertEqual(spec["template"]["spec"]["restartPolicy"], "Never")  # a pod failure policy needs it
        self.assertIn("backoffLimitPerIndex", spec)  # FailIndex needs it
        self.assertEqual(codes(shards, "FailIndex"), PERMANENT)
        self.assertFalse(codes(shards, "FailIndex") & RETRYABLE)
        self.assertEqual(container(shards)["command"][:3], ["reel", "shard", "run"])

        join = job("join-job.yaml")
        self.assertEqual(join["kind"], "Job")
        self.assertNotIn("completionMode", join["spec"])
        self.assertFalse(codes(join, "FailJob") & RETRYABLE)
        self.assertEqual(container(join)["command"][:3], ["reel", "shard", "join"])
        # Both see the plan at the same path on the same claim.
        self.assertEqual(container(shards)["command"][3], container(join)["command"][3])
        claim = lambda m: {v["name"]: v["persistentVolumeClaim"]["claimName"]
                           for v in m["spec"]["template"]["spec"]["volumes"]}["work"]
        self.assertEqual(claim(shards), claim(join))

    def test_their_commands_split_and_join_a_video_with_the_index_from_the_environment(self):
        shards, join = job("shard-job.yaml"), job("join-job.yaml")
        count = shards["spec"]["completions"]
        plan_in_pod = container(shards)["command"][3]
        mount = next(m["mountPath"] for m in container(shards)["volumeMounts"] if plan_in_pod.startswith(m["mountPath"]))
        with tempfile.TemporaryDirectory() as work:
            clip = os.path.join(work, "clip.mp4")
            subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=24", "-frames:v", "40",
                            "-c:v", "libx264", "-qp", "0", "-g", "8", clip], check=True)
            graph = {"version": 1, "nodes": [
                {"id": "src", "type": "source.video", "params": {"path": clip}},
                {"id": "up", "type": "upscaler.resize", "inputs": {"in": "src.out"}, "params": {"scale": 2}},
                {"id": "interp", "type": "interpolator.blend", "inputs": {"in": "up.out"}, "params": {"multiplier": 2}},
                {"id": "enc", "type": "encoder.ffmpeg", "inputs": {"in": "interp.out"},
                 "params": {"path": os.path.join(work, "out.mkv"), "codec": "ffv1"}}]}
            with open(os.path.join(work, "graph.json"), "w") as f:
                json.dump(graph, f)
            env = dict(os.environ, REEL_PLUGIN_PATH=PLUGIN_DIR)
            whole = subprocess.run([REEL, "run", "--no-progress", os.path.join(work, "graph.json"), "--set",
                                    "enc.path=" + os.path.join(work, "whole.mkv")], env=env, capture_output=True, text=True)
            self.assertEqual(whole.returncode, 0, whole.stderr)
            plan = work + plan_in_pod[len(mount):]
            made = subprocess.run([REEL, "shard", "plan", os.path.join(work, "graph.json"), "--shards", str(count),
                                   "-o", plan], env=env, capture_output=True, text=True)
            self.assertEqual(made.returncode, 0, made.stderr)

            for index in reversed(range(count)):  # any order
                pod = run_container(shards, work, index)
                self.assertEqual(pod.returncode, 0, pod.stderr)
                self.assertIn("running shard %d of %d" % (index, count), pod.stderr)
            again = run_container(shards, work, 0)  # a retried pod
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertIn("is done already", again.stderr)
            joined = run_container(join, work)
            self.assertEqual(joined.returncode, 0, joined.stderr)

            expected = frame_hashes(os.path.join(work, "whole.mkv"))
            self.assertEqual(len(expected), 79)  # (40 - 1) * 2 + 1
            self.assertEqual(frame_hashes(os.path.join(work, "out.mkv")), expected)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
