"""The ranking of zero-shot retrieval at Flickr30k/MSCOCO scale, side by side:
5,000 queries against 25,000 candidates (512-wide random unit vectors), the
10 best candidates of each.

  python benches/peer/retrieval_ranking.py write DIR   # queries/candidates Parquet (pyarrow)
  python benches/peer/retrieval_ranking.py torch DIR   # the peer (torch)
  python benches/peer/retrieval_ranking.py compare DIR OURS.csv
      # OURS.csv: `id,top` (top: space-separated positions) from clip-sql,
      # see benches/results/cpu_2core_2026-11-28_retrieval_ranking.md

The peer ranks as CLIP_benchmark's zeroshot_retrieval does: the whole score
matrix `queries @ candidates.T` at once (5,000 x 25,000 floats, 500 MB), then
torch.topk over it in batches. clip-sql's side is
benches/retrieval_ranking.sql (clip_top_k: candidates held once, queries
scored in chunks of 256). Both print seconds and the positions' checksum, so
the two answers can be compared; `/usr/bin/time -f %M` gives peak memory.
"""

import sys
import time
from pathlib import Path

QUERIES, CANDIDATES, WIDTH, K, SEED = 5_000, 25_000, 512, 10, 0


def vectors(rng, n):
    import numpy as np

    v = rng.standard_normal((n, WIDTH), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write(directory):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name, n in [("queries", QUERIES), ("candidates", CANDIDATES)]:
        v = vectors(rng, n)
        values = pa.array(v.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(values, WIDTH)
        table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "v": column})
        pq.write_table(table, directory / f"{name}.parquet")
    print(f"wrote {directory}/queries.parquet and candidates.parquet")


def read(directory, name):
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(directory / f"{name}.parquet").sort_by("id")
    flat = table.column("v").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(-1, WIDTH))


def peer(directory):
    import torch

    torch.set_num_threads(2)
    queries = torch.from_numpy(read(directory, "queries"))
    candidates = torch.from_numpy(read(directory, "candidates"))
    started = time.perf_counter()
    scores = queries @ candidates.t()  # as CLIP_benchmark: the whole matrix
    tops = [torch.topk(scores[s : s + 256], K, dim=1)[1] for s in range(0, len(scores), 256)]
    top = torch.cat(tops)
    seconds = time.perf_counter() - started
    print(f"torch: {seconds:.2f} s, checksum of the best positions {int(top[:, 0].sum())}")


def compare(directory, ours_csv):
    import torch

    queries = torch.from_numpy(read(directory, "queries").copy())
    candidates = torch.from_numpy(read(directory, "candidates").copy())
    theirs = torch.topk(queries @ candidates.t(), K, dim=1)[1].tolist()
    lines = Path(ours_csv).read_text().splitlines()[1:]
    ours = [[int(p) for p in line.split(",")[1].split()] for line in lines]
    best = sum(a[0] == b[0] for a, b in zip(ours, theirs))
    whole = sum(a == b for a, b in zip(ours, theirs))
    print(f"{len(ours)} queries: same best candidate {best}, same top {K} in order {whole}")


if __name__ == "__main__":
    what, directory = sys.argv[1], Path(sys.argv[2])
    if what == "compare":
        compare(directory, sys.argv[3])
    else:
        {"write": write, "torch": peer}[what](directory)
