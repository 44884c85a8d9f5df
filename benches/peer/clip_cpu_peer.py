"""PyTorch/PIL peer of `benches/clip_cpu.rs`: the same three CPU figures,
measured the way CLIP_benchmark runs the reference implementation.

- decode_preprocess/one_core: PIL decode + open_clip's eval preprocess
  (bicubic resize, centre crop, normalise) of 500x375 JPEGs, one thread;
- vit_b32_image_encoder/batch32: open_clip ViT-B-32 (random init, f32,
  inference_mode) on a preprocessed batch of 32, all threads;
- end_to_end: decode + preprocess + encode of 64 images, batches of 32,
  the peer of `SELECT clip_embed_image(...)`;
- rn50_image_encoder/batch32, rn101_image_encoder/batch32: open_clip's RN50
  and RN101 (random init) on the same batch.

Usage: python clip_cpu_peer.py <jpeg dir>   (pip install -r requirements.txt)
The JPEGs are written by `compare_cpu.sh` so both sides decode the same bytes.
"""
import io
import os
import sys
import time

import numpy as np
import open_clip
import torch
from PIL import Image


def images_per_second(fn, n_images, min_seconds=10.0, warmup=1):
    for _ in range(warmup):
        fn()
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and runs >= 3:
            return runs * n_images / elapsed


def main():
    jpeg_dir = sys.argv[1]
    files = sorted(f for f in os.listdir(jpeg_dir) if f.endswith(".jpg"))
    blobs = [open(os.path.join(jpeg_dir, f), "rb").read() for f in files]
    threads = int(os.environ.get("PEER_THREADS", os.cpu_count()))

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()

    torch.set_num_threads(1)
    batch = blobs[:32]
    rate = images_per_second(lambda: [preprocess(Image.open(io.BytesIO(b))) for b in batch], len(batch))
    print(f"decode_preprocess/one_core\t{rate:.1f}\timages/s")

    torch.set_num_threads(threads)
    x = torch.stack([preprocess(Image.open(io.BytesIO(b))) for b in batch])
    with torch.inference_mode():
        rate = images_per_second(lambda: model.encode_image(x), len(batch))
    print(f"vit_b32_image_encoder/batch32\t{rate:.1f}\timages/s")

    def end_to_end():
        with torch.inference_mode():
            for i in range(0, 64, 32):
                chunk = blobs[i:i + 32]
                pixels = torch.stack([preprocess(Image.open(io.BytesIO(b))) for b in chunk])
                model.encode_image(pixels)

    rate = images_per_second(end_to_end, 64)
    print(f"end_to_end/64_images\t{rate:.1f}\timages/s")

    # OpenAI's ResNet towers (random init, inference statistics as loaded).
    for name, label in (("RN50", "rn50"), ("RN101", "rn101")):
        resnet = open_clip.create_model(name, pretrained=None).eval()
        with torch.inference_mode():
            rate = images_per_second(lambda: resnet.encode_image(x), len(batch))
        print(f"{label}_image_encoder/batch32\t{rate:.1f}\timages/s")


if __name__ == "__main__":
    main()
