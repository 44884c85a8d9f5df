"""Zero-shot retrieval, clip-sql against LAION's CLIP_benchmark on the same
random-weight model and the same stand-in shards.

  python benches/peer/retrieval_standin.py make DIR     # model + shards
  python benches/peer/retrieval_standin.py peer DIR     # CLIP_benchmark's figures
  clip-sql -q --format csv -f sql/benchmarks/flickr30k.sql \
      --param model=DIR/model --param data=DIR/standin/test/

`make` writes DIR/model: a full-size ViT-B/32 (OpenAI's architecture,
open_clip's `ViT-B-32-quickgelu`) with open_clip's random initialisation
(torch seed 0), as open_clip_config.json + open_clip_model.safetensors; and
DIR/standin: CLIP_benchmark's retrieval layout (dataset_type.txt =
`retrieval`, test/nshards.txt, test/{0,1}.tar), 200 samples, each a 96x72
PNG drawn from its index and a .txt of 5 captions, one per line, made from
a small vocabulary (numpy seed 0).

`peer` runs `clip_benchmark eval --task zeroshot_retrieval --recall_k 1 5 10
--no_amp` on the CPU and prints its six figures in percent. Needs
clip-benchmark, open_clip_torch, torch, webdataset and pillow (PyPI); no shim
was needed for the retrieval task.
"""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

SAMPLES, CAPTIONS_PER_IMAGE, SHARD_SIZE = 200, 5, 100
WORDS = (
    "a an the dog cat man woman child bike car street red blue green small big "
    "running sitting holding near on under with two three people tree house water "
    "ball field beach snow city park playing looking white black"
).split()


def make_model(directory):
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    name = "ViT-B-32-quickgelu"
    model = open_clip.create_model(name, pretrained=None)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, directory / "open_clip_model.safetensors")
    config = {
        "model_cfg": open_clip.get_model_config(name),
        "preprocess_cfg": {
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))


def image_bytes(index):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 72), ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256))
    draw = ImageDraw.Draw(image)
    draw.rectangle([index % 40, index % 30, 40 + index % 50, 30 + index % 40],
                   fill=((index * 11) % 256, 255 - (index * 7) % 256, (index * 3) % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_shards(directory):
    import numpy as np

    rng = np.random.default_rng(0)
    test = directory / "test"
    test.mkdir(parents=True, exist_ok=True)
    (directory / "dataset_type.txt").write_text("retrieval\n")
    shards = (SAMPLES + SHARD_SIZE - 1) // SHARD_SIZE
    (test / "nshards.txt").write_text(f"{shards}\n")
    for shard in range(shards):
        with tarfile.open(test / f"{shard}.tar", "w") as tar:
            for index in range(shard * SHARD_SIZE, min(SAMPLES, (shard + 1) * SHARD_SIZE)):
                captions = [
                    " ".join(rng.choice(WORDS, size=rng.integers(4, 10)))
                    for _ in range(CAPTIONS_PER_IMAGE)
                ]
                for ext, data in [("png", image_bytes(index)),
                                  ("txt", "\n".join(captions).encode())]:
                    info = tarfile.TarInfo(f"s{index:06d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def peer(directory):
    out = directory / "clip_benchmark.json"
    subprocess.run(
        [sys.executable, "-m", "clip_benchmark.cli", "eval",
         "--dataset", "wds/standin", "--dataset_root", str(directory / "standin"),
         "--task", "zeroshot_retrieval", "--model", "ViT-B-32-quickgelu",
         "--pretrained", str(directory / "model" / "open_clip_model.safetensors"),
         "--recall_k", "1", "5", "10", "--no_amp", "--num_workers", "0",
         "--batch_size", "50", "--output", str(out)],
        check=True,
    )
    metrics = json.loads(out.read_text())["metrics"]
    for k in (1, 5, 10):
        for way in ("image", "text"):
            name = f"{way}_retrieval_recall@{k}"
            print(f"{name}: {100 * metrics[name]:.2f}")


if __name__ == "__main__":
    what, directory = sys.argv[1], Path(sys.argv[2])
    if what == "make":
        make_model(directory / "model")
        make_shards(directory / "standin")
        print(f"wrote {directory}/model and {directory}/standin")
    else:
        peer(directory)
