"""What crossing DataFusion's FFI costs: the same zero-shot query over the
same image folder through datafusion-python + datafusion_clip and through
`clip-sql`, each warm (model loaded, classifier cached), same run.

    python benches/python_vs_clip_sql.py <clip-sql binary> [images=600] [runs per round=5] [csv]

Writes the folder (64x48 PNGs in three classes) under a temporary directory
and prints the median seconds of each and their ratio; with a `csv` path,
also every run's seconds (`path,run,seconds` rows) there. The model is the
committed tiny one (tests/fixtures/models/hf_tiny), so the figure is the
per-row overhead around the model, not the model.
"""

import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from datafusion import SessionContext

import datafusion_clip

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "fixtures" / "models" / "hf_tiny"
ROUNDS = 3


def png(width: int, height: int, seed: int) -> bytes:
    """A small RGB PNG with pixels made from the seed."""
    rows = b"".join(
        b"\x00" + bytes(((x * 7 + y * 3 + seed * 11 + c * 50) % 256) for x in range(width) for c in range(3))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main() -> None:
    clip_sql = sys.argv[1]
    images = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    csv_path = sys.argv[4] if len(sys.argv) > 4 else None
    folder = Path(tempfile.mkdtemp(prefix="ffi-cost-"))
    for i in range(images):
        label = ["cat", "dog", "bird"][i % 3]
        (folder / label).mkdir(exist_ok=True)
        (folder / label / f"{i:05d}.png").write_bytes(png(64, 48, i))
    create = f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'"
    query = (
        "SELECT label, count(*) AS n, avg(CASE WHEN "
        f"clip_zero_shot('{MODEL}', image, ['cat', 'dog', 'bird'])['label'] = label "
        "THEN 1.0 ELSE 0.0 END) AS acc1 FROM pets GROUP BY label"
    )

    ctx = SessionContext(datafusion_clip.session_config())
    datafusion_clip.register(ctx)
    ctx.sql(create)
    ctx.sql(query).collect()  # the model load and the classifier, not timed

    # Rounds alternate the two, so that neither gets the quieter minutes of
    # a shared machine: a clip-sql process runs the query runs+1 times
    # (datafusion-cli prints each one's elapsed seconds; the first, with
    # the model load, is dropped), then Python runs it `runs` times.
    rust: list[float] = []
    python: list[float] = []
    for _ in range(ROUNDS):
        out = subprocess.run(
            [clip_sql, "--format", "csv", "-c", create, *[query] * (runs + 1)],
            capture_output=True, text=True, check=True,
        )
        elapsed = [float(s) for s in re.findall(r"Elapsed ([0-9.]+) seconds", out.stdout + out.stderr)]
        if len(elapsed) < runs + 1:  # CREATE, the cold run, then `runs` warm ones
            sys.exit(f"expected at least {runs + 1} 'Elapsed' lines from clip-sql, got {len(elapsed)}:\n{out.stderr}")
        rust += elapsed[-runs:]
        for _ in range(runs):
            started = time.perf_counter()
            ctx.sql(query).collect()
            python.append(time.perf_counter() - started)

    r, p = statistics.median(rust), statistics.median(python)
    print(f"images {images}, {ROUNDS} rounds of {runs} warm runs each")
    print(f"clip-sql           median {r:.3f} s  {[round(t, 3) for t in rust]}")
    print(f"datafusion-python  median {p:.3f} s  {[round(t, 3) for t in python]}")
    print(f"python / clip-sql  {p / r:.3f}")
    if csv_path:
        with open(csv_path, "w") as f:
            f.write("path,images,run,seconds\n")
            for name, times in (("clip-sql", rust), ("datafusion-python", python)):
                for i, t in enumerate(times, 1):
                    f.write(f"{name},{images},{i},{t:.4f}\n")


if __name__ == "__main__":
    main()
