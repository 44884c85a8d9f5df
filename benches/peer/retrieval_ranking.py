"""The ranking of zero-shot retrieval at Flickr30k/MSCOCO scale, side by side:
5,000 queries against 25,000 candidates (512-wide random unit vectors), the
10 best candidates of each.

  python benches/peer/retrieval_ranking.py write DIR   # queries/candidates Parquet (pyarrow)
  python benches/peer/retrieval_ranking.py torch DIR   # the peer (torch)

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


if __name__ == "__main__":
    what, directory = sys.argv[1], Path(sys.argv[2])
    {"write": write, "torch": peer}[what](directory)
