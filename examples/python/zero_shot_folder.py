"""Zero-shot accuracy of a CLIP model over an image folder, per class, with
datafusion-python: the folder names are the labels.

    pip install ./python                      # once, from the repository root
    python examples/python/zero_shot_folder.py <folder> [model]

With no network, use a random-weight model and a folder of the test images
(accuracy near chance, but the whole path runs):

    cargo run --release --example make_random_model -- /tmp/tiny-clip tiny
    mkdir -p /tmp/pets/cat /tmp/pets/dog
    cp tests/fixtures/images/rgb_2*.png /tmp/pets/cat/
    cp tests/fixtures/images/rgb_3*.png /tmp/pets/dog/
    python examples/python/zero_shot_folder.py /tmp/pets /tmp/tiny-clip
"""

import sys

from datafusion import SessionContext

import datafusion_clip


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else "ViT-B/32"

    ctx = SessionContext(datafusion_clip.session_config(batch_size=32))
    datafusion_clip.register(ctx)
    ctx.sql(f"CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION '{folder}'")
    df = ctx.sql(
        f"""
        WITH labels AS (SELECT array_agg(DISTINCT label ORDER BY label) AS names
                        FROM photos WHERE label IS NOT NULL),
             predicted AS (
               SELECT label, clip_zero_shot('{model}', image, (SELECT names FROM labels)) AS p
               FROM photos WHERE label IS NOT NULL)
        SELECT label, count(*) AS n, count(p) AS n_predicted,
               avg(CASE WHEN p['label'] = label THEN 1.0 ELSE 0.0 END) AS acc1
        FROM predicted GROUP BY label ORDER BY label"""
    )
    df.show()


if __name__ == "__main__":
    main()
