"""Print clip-sql bench's figures next to the PyTorch peer's, with ratios.
Usage: python ratios.py DIR   (DIR holds efficiency.csv, peer_efficiency.csv
and, when measured, end_to_end.csv and peer_end_to_end.csv)."""
import csv
import os
import sys


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def per_model(rows_):
    out = {}
    for r in rows_:
        m = out.setdefault(r["model"], {"latency_ms": float(r["latency_ms"]),
                                         "prompts_per_s": float(r["prompts_per_s"]),
                                         "mem": r.get("peak_device_bytes") or "", "batches": {}})
        if r["images_per_s"]:
            m["batches"][int(r["batch"])] = float(r["images_per_s"])
    return out


def ratio(a, b):
    return f"{a / b:6.2f}x" if a and b else "     -"


def main():
    d = sys.argv[1]
    ours, peer = per_model(rows(os.path.join(d, "efficiency.csv"))), per_model(rows(os.path.join(d, "peer_efficiency.csv")))
    print(f"{'model':16} {'figure':22} {'datafusion-clip':>16} {'PyTorch':>12} {'ratio':>8}")
    for model, o in ours.items():
        p = peer.get(model)
        if not p:
            continue
        print(f"{model:16} {'batch-1 latency ms':22} {o['latency_ms']:16.2f} {p['latency_ms']:12.2f} {ratio(p['latency_ms'], o['latency_ms'])}")
        for b in sorted(set(o["batches"]) & set(p["batches"])):
            if b == 1:
                continue
            print(f"{'':16} {'images/s @ ' + str(b):22} {o['batches'][b]:16.1f} {p['batches'][b]:12.1f} {ratio(o['batches'][b], p['batches'][b])}")
        ob, pb = max(o["batches"].values(), default=0), max(p["batches"].values(), default=0)
        print(f"{'':16} {'images/s, best batch':22} {ob:16.1f} {pb:12.1f} {ratio(ob, pb)}")
        print(f"{'':16} {'prompts/s':22} {o['prompts_per_s']:16.1f} {p['prompts_per_s']:12.1f} {ratio(o['prompts_per_s'], p['prompts_per_s'])}")
        if o["mem"] and p["mem"]:
            om, pm = int(o["mem"]) / 2**20, int(p["mem"]) / 2**20
            print(f"{'':16} {'peak device MiB':22} {om:16.0f} {pm:12.0f} {ratio(pm, om)}")
    e, pe = rows(os.path.join(d, "end_to_end.csv")), rows(os.path.join(d, "peer_end_to_end.csv"))
    if e and pe:
        e, pe = e[0], pe[0]
        a, b = float(e["images_per_s"]), float(pe["images_per_s"])
        print(f"\nend to end {e['model']}: {a:.1f} images/s vs PyTorch DataLoader {b:.1f} images/s: {ratio(a, b)}")
        a, b = float(e["decode_one_core_images_per_s"]), float(pe["decode_one_core_images_per_s"])
        print(f"decode+preprocess on one core: {a:.1f} vs PIL {b:.1f} images/s: {ratio(a, b)}")
        bound = min(float(e["model_only_images_per_s"] or "inf"), float(e["decode_bound_images_per_s"]))
        print(f"end to end vs min(model-only, decode-bound) = {bound:.1f}: {float(e['images_per_s']) / bound:.2f}x"
              f" (model busy {float(e['model_busy_s']):.2f} s of {float(e['wall_s']):.2f} s wall)")


if __name__ == "__main__":
    main()
