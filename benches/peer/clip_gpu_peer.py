"""PyTorch/open_clip peer of `clip-sql bench`: the same figures, measured
the way the reference implementation runs, on the same machine.

Per model (open_clip, random init, fp16 weights and inputs on the GPU,
eager, `torch.inference_mode()`, QuickGELU as OpenAI's checkpoints):
  - batch-1 latency: median of synchronised passes;
  - images/s at each batch size: back-to-back passes, synchronised at the end;
  - prompts/s: batches of prompts tokenised by open_clip (padded to 77);
  - peak device memory: torch.cuda.max_memory_reserved (what the caching
    allocator took from the device; comparable to clip-sql's used memory).
End to end (--images DIR): PIL decode + open_clip's preprocess in a
DataLoader with one worker per core, pinned memory, batches of 256, fp16
ViT-B/32 on the GPU: images/s over the folder. Also PIL decode+preprocess
images/s on one core.

Usage: python clip_gpu_peer.py --out DIR [--images DIR] [--models RN50,ViT-B/32]
Writes DIR/peer_efficiency.csv and DIR/peer_end_to_end.csv.
"""
import argparse
import csv
import io
import os
import statistics
import time

import open_clip
import torch
from PIL import Image

ARCH = {
    "RN50": "RN50",
    "RN101": "RN101",
    "ViT-B/32": "ViT-B-32",
    "ViT-B/16": "ViT-B-16",
    "ViT-L/14": "ViT-L-14",
    "ViT-L/14@336px": "ViT-L-14-336",
}

TEMPLATES = ["a photo of a {}.", "a bad photo of the {}.",
             "a cropped photo of the small {}, a type of animal.", "itap of my {}."]
NOUNS = ["goldfish", "great white shark", "tree frog", "loggerhead sea turtle",
         "dog", "grey wolf", "airliner", "espresso maker"]


def sample_prompts(n):
    # The same prompts as clip-sql bench (crates/clip-sql/src/bench/model_speed.rs).
    return [TEMPLATES[i % 4].format(NOUNS[(i // 4) % 8]) for i in range(n)]


def sync():
    torch.cuda.synchronize()


def rate(fn, n, seconds):
    fn()
    sync()
    passes, start = 0, time.perf_counter()
    while passes < 3 or time.perf_counter() - start < seconds:
        fn()
        passes += 1
        if passes % 8 == 0:
            sync()
    sync()
    return passes * n / (time.perf_counter() - start)


def measure(name, batch_sizes, text_batch, seconds):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = open_clip.create_model(ARCH[name], pretrained=None, force_quick_gelu=True)
    model = model.half().cuda().eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    tokenizer = open_clip.get_tokenizer(ARCH[name])
    row = {"model": name, "image_size": size}
    with torch.inference_mode():
        largest = max(batch_sizes)
        x_all = torch.randn(largest, 3, size, size, device="cuda", dtype=torch.float16)
        one = x_all[:1]
        for _ in range(3):
            model.encode_image(one)
        sync()
        times, start = [], time.perf_counter()
        while len(times) < 10 or (time.perf_counter() - start < min(seconds, 3) and len(times) < 200):
            t = time.perf_counter()
            model.encode_image(one)
            sync()
            times.append((time.perf_counter() - t) * 1e3)
        row["latency_ms"] = statistics.median(times)
        row["batches"] = {}
        for b in batch_sizes:
            try:
                x = x_all[:b]
                row["batches"][b] = rate(lambda: model.encode_image(x), b, seconds)
            except torch.cuda.OutOfMemoryError:
                row["batches"][b] = None
                break
        tokens = tokenizer(sample_prompts(text_batch)).cuda()
        row["prompts_per_s"] = rate(lambda: model.encode_text(tokens), text_batch, seconds)
    row["peak_device_bytes"] = torch.cuda.max_memory_reserved()
    del model
    return row


class Folder(torch.utils.data.Dataset):
    def __init__(self, files, preprocess):
        self.files, self.preprocess = files, preprocess

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with open(self.files[i], "rb") as f:
            return self.preprocess(Image.open(io.BytesIO(f.read())))


def end_to_end(images, name, batch, workers):
    files = sorted(os.path.join(images, f) for f in os.listdir(images)
                   if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")))
    model, _, preprocess = open_clip.create_model_and_transforms(
        ARCH[name], pretrained=None, force_quick_gelu=True)
    model = model.half().cuda().eval()
    # PIL on one core.
    sample = [open(f, "rb").read() for f in files[:256]]
    start = time.perf_counter()
    for b in sample:
        preprocess(Image.open(io.BytesIO(b)))
    one_core = len(sample) / (time.perf_counter() - start)

    def run(subset):
        loader = torch.utils.data.DataLoader(Folder(subset, preprocess), batch_size=batch,
                                             num_workers=workers, pin_memory=True)
        n = 0
        with torch.inference_mode():
            for x in loader:
                model.encode_image(x.cuda(non_blocking=True).half())
                n += x.shape[0]
        sync()
        return n

    run(files[: batch * 2])  # warm-up: kernels, worker start-up code paths
    start = time.perf_counter()
    n = run(files)
    wall = time.perf_counter() - start
    return {"model": name, "images": n, "wall_s": wall, "images_per_s": n / wall,
            "decode_one_core_images_per_s": one_core, "workers": workers, "batch": batch}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(ARCH))
    p.add_argument("--batch-sizes", default="1,64,128,256,512")
    p.add_argument("--text-batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--images")
    p.add_argument("--end-to-end-model", default="ViT-B/32")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    batch_sizes = [int(b) for b in a.batch_sizes.split(",")]
    with open(os.path.join(a.out, "peer_efficiency.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "image_size", "latency_ms", "batch", "images_per_s",
                    "prompts_per_s", "peak_device_bytes"])
        for name in a.models.split(","):
            row = measure(name, batch_sizes, a.text_batch, a.seconds)
            best = max((v, b) for b, v in row["batches"].items() if v)
            print(f"peer {name:16} latency {row['latency_ms']:7.2f} ms  best {best[0]:9.1f} images/s "
                  f"(batch {best[1]})  {row['prompts_per_s']:9.1f} prompts/s  "
                  f"{row['peak_device_bytes'] / 2**20:7.0f} MiB", flush=True)
            for b, v in row["batches"].items():
                w.writerow([name, row["image_size"], f"{row['latency_ms']:.3f}", b,
                            "" if v is None else f"{v:.2f}", f"{row['prompts_per_s']:.2f}",
                            row["peak_device_bytes"]])
            f.flush()
    if a.images:
        e = end_to_end(a.images, a.end_to_end_model, 256, a.workers)
        print(f"peer end to end {e['model']}: {e['images_per_s']:.1f} images/s over {e['images']} images "
              f"({e['workers']} DataLoader workers); PIL decode+preprocess {e['decode_one_core_images_per_s']:.1f}"
              " images/s on one core", flush=True)
        with open(os.path.join(a.out, "peer_end_to_end.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(e))
            w.writeheader()
            w.writerow(e)


if __name__ == "__main__":
    main()
