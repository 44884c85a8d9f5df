"""Write the benchmark's 500x375 photo-like JPEGs (quality 90, PIL's
default 4:2:0 subsampling) so the Rust bench and the Python peer decode
the same bytes. Usage: python make_jpegs.py <dir> [count] [first seed]"""
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 64
first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
os.makedirs(out, exist_ok=True)
y, x = np.mgrid[0:375, 0:500].astype(np.uint32)
for seed in range(first, first + count):
    # uint32 arithmetic wraps; the per-seed term is wrapped explicitly.
    noise = ((x * 73856093) ^ (y * 19349663) ^ np.uint32(seed * 83492791 % 2**32)) % 32
    r = (x * 255 // 500 + noise) % 256
    g = (y * 255 // 375 + seed * 40) % 256
    b = ((x + y + seed) % 256) ^ noise
    img = Image.fromarray(np.stack([r, g, b], axis=-1).astype(np.uint8), "RGB")
    img.save(os.path.join(out, f"photo_{seed:04d}.jpg"), quality=90)
