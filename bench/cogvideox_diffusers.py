#!/usr/bin/python3
"""The speed reference for reel_cogvideox_bench: diffusers' AutoencoderKLCogVideoX and the T5 v1.1
encoder of shared/tools/diffusers-reference (the implementation the shared reference was made
with), on the same diffusers folder, the same inputs (same seeds, same libtorch generator), 2 threads.

  DIFFUSERS_SRC=... COGREF_PYTHONPATH=... cogvideox_diffusers.py FOLDER t5 REPEATS
                                                                 FOLDER decode LATENT_FRAMES H W REPEATS
                                                                 FOLDER encode FRAMES H W REPEATS
                                                                 FOLDER step LATENT_FRAMES H W REPEATS
Prints "seconds S" per repeat, the median and "checksum" (sum of |output|).
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIMS = os.path.join(HERE, "..", "..", "shared", "tools", "diffusers-reference", "shims")
sys.path[:0] = ([os.environ.get("COGREF_SHIMS", SHIMS)]
                + [p for p in os.environ.get("COGREF_PYTHONPATH", "").split(os.pathsep) if p]
                + [os.environ["DIFFUSERS_SRC"]])

import _torch_compat  # noqa: E402

_torch_compat.apply()

import torch  # noqa: E402
from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel  # noqa: E402
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline  # noqa: E402
from transformers import T5EncoderModel  # noqa: E402  (the reference's T5)


def main():
    folder, what = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    if what == "t5":
        repeats = int(sys.argv[3])
        model = T5EncoderModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float32).eval()
        torch.manual_seed(0)
        ids = torch.randint(0, model.config.vocab_size, (2, 226))
        run = lambda: model(ids)[0]  # noqa: E731
    elif what == "step":
        frames, h, w, repeats = (int(x) for x in sys.argv[3:7])
        model = CogVideoXTransformer3DModel.from_pretrained(os.path.join(folder, "transformer"),
                                                            torch_dtype=torch.float32).eval()
        torch.manual_seed(0)
        latents = torch.randn(2, frames, model.config.in_channels, h, w)
        text = torch.randn(2, model.config.max_text_seq_length, model.config.text_embed_dim)
        timestep = torch.full((2,), 999, dtype=torch.long)
        rope = None
        if model.config.use_rotary_positional_embeddings:
            # The pipeline's own table builder, on a stand-in holding what it reads.
            pipe = type("Pipe", (), {"transformer": model, "vae_scale_factor_spatial": 8})()
            rope = CogVideoXPipeline._prepare_rotary_positional_embeddings(pipe, h * 8, w * 8, frames, "cpu")
        run = lambda: model(hidden_states=latents, encoder_hidden_states=text, timestep=timestep,  # noqa: E731
                            image_rotary_emb=rope, return_dict=False)[0]
    else:
        frames, h, w, repeats = (int(x) for x in sys.argv[3:7])
        vae = AutoencoderKLCogVideoX.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32).eval()
        torch.manual_seed(0)
        if what == "decode":
            latents = torch.randn(1, vae.config.latent_channels, frames, h, w)
            run = lambda: vae.decode(latents).sample  # noqa: E731
        else:
            video = torch.rand(1, 3, frames, h, w) * 2 - 1
            run = lambda: vae.encode(video).latent_dist.parameters  # noqa: E731
    seconds = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            out = run()
            seconds.append(time.perf_counter() - start)
            print("seconds %.4f" % seconds[-1], flush=True)
    print("median %.4f (%s, output %s, threads %d)" % (statistics.median(seconds), what, list(out.shape),
                                                       torch.get_num_threads()))
    print("checksum %.6f" % out.abs().sum().item())


if __name__ == "__main__":
    main()
