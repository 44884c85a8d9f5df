"""datafusion_clip inside datafusion-python 55: the same answers as the Rust
path (`clip-sql`) on the same model and images, through DataFusion's FFI.

Uses the committed tiny models of tests/fixtures/models (random weights, no
network) and image folders made from tests/fixtures/images. The `clip-sql`
binary the comparisons run is $CLIP_SQL, else the one `cargo test` built.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datafusion import SessionConfig, SessionContext

import datafusion_clip

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODEL = str(FIXTURES / "models" / "hf_tiny")
RESNET = str(FIXTURES / "models" / "open_clip_resnet_tiny")
LABELS = "['cat', 'dog', 'bird']"


def clip_sql_binary() -> str:
    candidates = [os.environ.get("CLIP_SQL")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates += [f"{target}/debug/clip-sql", f"{target}/release/clip-sql"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "no clip-sql binary to compare with: set CLIP_SQL, or run `cargo build -p clip-sql` first"
    )


def clip_sql(sql: str) -> str:
    out = subprocess.run(
        [clip_sql_binary(), "-q", "--format", "csv", "-c", sql],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """cat/dog/bird folders of the fixture images, and one broken file."""
    root = tmp_path_factory.mktemp("pets")
    images = sorted((FIXTURES / "images").iterdir())
    for i, image in enumerate(images):
        label = ["cat", "dog", "bird"][i % 3]
        (root / label).mkdir(exist_ok=True)
        shutil.copy(image, root / label / image.name)
    jpeg = (FIXTURES / "images" / "rgb_640x480_baseline.jpg").read_bytes()
    (root / "dog" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    return root


def image_count(folder: Path) -> int:
    """Rows of the folder's table: every file is an image or a broken one."""
    return sum(1 for path in folder.rglob("*") if path.is_file())


@pytest.fixture()
def ctx(folder) -> SessionContext:
    ctx = SessionContext(datafusion_clip.session_config(batch_size=4))
    datafusion_clip.register(ctx)
    ctx.sql(f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'")
    return ctx


ACCURACY = f"""
SELECT label, count(*) AS n, count(p) AS predicted,
       avg(CASE WHEN p['label'] = label THEN 1.0 ELSE 0.0 END) AS acc1
FROM (SELECT label, clip_zero_shot('{{model}}', image, {LABELS}) AS p FROM pets)
GROUP BY label ORDER BY label"""


@pytest.mark.parametrize("model", [MODEL, RESNET])
def test_zero_shot_accuracy_by_label_equals_clip_sqls(ctx, folder, model):
    ours = ctx.sql(ACCURACY.format(model=model)).to_pylist()
    create = f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'"
    theirs = clip_sql(f"{create}; {ACCURACY.format(model=model)}").strip().splitlines()
    assert theirs[0] == "label,n,predicted,acc1"
    rows = [line.split(",") for line in theirs[1:]]
    assert [(r["label"], r["n"], r["predicted"]) for r in ours] == [
        (r[0], int(r[1]), int(r[2])) for r in rows
    ]
    for r, (_, _, _, acc1) in zip(ours, rows):
        assert r["acc1"] == pytest.approx(float(acc1), abs=1e-12)
    # Every image but the broken one was predicted.
    assert sum(r["n"] - r["predicted"] for r in ours) == 1


def test_embeddings_equal_the_rust_paths_bit_for_bit(ctx, folder, tmp_path):
    query = f"SELECT path, clip_embed_image('{MODEL}', image) AS e FROM pets WHERE label = 'cat' ORDER BY path"
    # The same passes on both sides: which images share a forward pass
    # (batch size; partitions feeding the model at once) can move the last
    # bit of a CPU matrix product.
    same_passes = "SET clip.batch_size = 4; SET datafusion.execution.target_partitions = 1"
    for statement in same_passes.split("; "):
        ctx.sql(statement)
    ours = ctx.sql(query).to_arrow_table()
    out = tmp_path / "embeddings.parquet"
    clip_sql(
        f"{same_passes}; CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'; "
        f"COPY ({query}) TO '{out}' STORED AS PARQUET"
    )
    theirs = pq.read_table(out)
    assert ours.column("path").to_pylist() == theirs.column("path").to_pylist()
    assert ours.num_rows == len(sorted((folder / "cat").iterdir()))
    ours_values = ours.column("e").combine_chunks().flatten().to_numpy()
    theirs_values = theirs.column("e").combine_chunks().flatten().to_numpy()
    assert ours_values.tobytes() == theirs_values.tobytes()


def test_embeddings_are_a_numpy_view_without_copy(ctx):
    table = ctx.sql(
        f"SELECT clip_embed_text('{MODEL}', t) AS e FROM (VALUES ('a cat'), ('a dog')) AS v(t)"
    ).to_arrow_table()
    embeddings = datafusion_clip.embeddings_to_numpy(table.column("e"))
    assert embeddings.shape == (2, 16)
    assert not embeddings.flags.owndata, "a view of Arrow's buffer, not a copy"
    norms = (embeddings**2).sum(axis=1)
    assert norms == pytest.approx([1.0, 1.0], abs=1e-5)


def test_a_bad_image_gives_null_and_clip_image_error_says_why(ctx):
    rows = ctx.sql(
        f"SELECT path, clip_embed_image('{MODEL}', image) IS NULL AS failed, "
        "clip_image_error(image) AS reason FROM pets WHERE path LIKE '%truncated.jpg'"
    ).to_pylist()
    assert len(rows) == 1
    assert rows[0]["failed"] is True
    assert "truncated" in rows[0]["reason"]


def test_a_wrong_argument_raises_datafusions_message(ctx):
    with pytest.raises(Exception, match="unknown model 'ViT-Q/99'"):
        ctx.sql("SELECT clip_embed_image('ViT-Q/99', image) FROM pets").collect()
    with pytest.raises(Exception, match="has no placeholder"):
        ctx.sql(f"SELECT clip_zero_shot('{MODEL}', image, ['cat'], ['a photo']) FROM pets").collect()


def test_two_queries_in_two_threads(ctx, folder):
    query = f"SELECT path, clip_zero_shot('{MODEL}', image, {LABELS})['label'] AS l FROM pets ORDER BY path"
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = ctx.sql(query).to_pylist()
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[0] == results[1]
    assert len(results[0]) == image_count(folder)


def test_settings_travel_and_bad_values_are_errors(folder):
    config = SessionConfig().with_information_schema(True)
    ctx = SessionContext(datafusion_clip.session_config(config))
    datafusion_clip.register(ctx, batch_size=3, on_error="error")
    shown = {r["name"]: r["value"] for r in ctx.sql("SHOW ALL").to_pylist()}
    assert shown["clip.batch_size"] == "3"
    ctx.sql(f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'")
    # clip.on_error = 'error' reached the function: the broken file fails the query.
    with pytest.raises(Exception, match="cannot be used"):
        ctx.sql(f"SELECT clip_embed_image('{MODEL}', image) FROM pets").collect()
    # The FFI namespace stores any value: the call says what is wrong.
    ctx.sql("SET clip.batch_size = 'lots'")
    with pytest.raises(Exception, match="clip.batch_size must be a positive integer"):
        ctx.sql(f"SELECT clip_embed_text('{MODEL}', 'a cat')").collect()
    with pytest.raises(ValueError, match="clip.dtype must be"):
        datafusion_clip.session_config(dtype="f64")
    with pytest.raises(TypeError, match="unknown clip setting"):
        datafusion_clip.register(ctx, batchsize=3)
    with pytest.raises(TypeError, match="takes a datafusion.SessionContext, got SessionConfig"):
        datafusion_clip.register(config)
    # The names come from the Rust settings, the same as SHOW ALL lists.
    assert {f"clip.{name}" for name in datafusion_clip.SETTINGS} == {
        name for name in shown if name.startswith("clip.")
    }
    assert {"device", "dtype", "batch_size", "on_error"} <= set(datafusion_clip.SETTINGS)


def test_without_the_namespace_register_keeps_the_settings(folder):
    ctx = SessionContext()
    datafusion_clip.register(ctx, on_error="error")
    ctx.sql(f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'")
    with pytest.raises(Exception, match="cannot be used"):
        ctx.sql(f"SELECT clip_embed_image('{MODEL}', image) FROM pets").collect()
    with pytest.raises(Exception, match="config namespace"):
        ctx.sql("SET clip.batch_size = 8")
    # Every function keeps them, clip_image_error too.
    small = SessionContext()
    datafusion_clip.register(small, max_image_pixels=1000)
    small.sql(f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'")
    reasons = small.sql(
        "SELECT clip_image_error(image) AS reason FROM pets WHERE path LIKE '%640x480%'"
    ).to_pylist()
    assert reasons and all("clip.max_image_pixels = 1000" in r["reason"] for r in reasons)


def test_tables_functions_and_aggregate(ctx, folder):
    ctx.register_table("folder", datafusion_clip.image_folder(str(folder)))
    n = ctx.sql("SELECT count(*) AS n FROM folder").to_pylist()[0]["n"]
    assert n == image_count(folder)
    models = ctx.sql("SELECT name FROM clip_models() WHERE supported").to_pylist()
    assert {"ViT-B/32", "RN50"} <= {m["name"] for m in models}
    avg = ctx.sql(
        "SELECT array_argmax(weighted_avg_list(p, w)) AS best FROM (VALUES "
        "([0.1, 0.9], 1.0), ([0.8, 0.2], 3.0)) AS v(p, w)"
    ).to_pylist()
    assert avg == [{"best": 0}]
    with pytest.raises(ValueError, match="is not a directory"):
        datafusion_clip.image_folder(str(folder / "no-such-folder"))


def test_webdataset_and_cifar_tables(tmp_path):
    import io
    import tarfile

    shard = tmp_path / "shards" / "0.tar"
    shard.parent.mkdir()
    jpeg = (FIXTURES / "images" / "rgb_640x480_baseline.jpg").read_bytes()
    with tarfile.open(shard, "w") as tar:
        for i in range(3):
            for name, data in ((f"s{i}.jpg", jpeg), (f"s{i}.cls", str(i).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    # CIFAR-10's binary layout: a label byte, then 3 x 1024 pixel bytes.
    records = b"".join(bytes([label]) + bytes([label * 20]) * 3072 for label in (7, 2))
    (tmp_path / "test_batch.bin").write_bytes(records)

    ctx = SessionContext()
    datafusion_clip.register(ctx)
    ctx.register_table("shards", datafusion_clip.webdataset(str(shard.parent)))
    ctx.register_table("cifar", datafusion_clip.cifar(str(tmp_path / "test_batch.bin")))
    assert ctx.sql("SELECT key, label FROM shards ORDER BY key").to_pylist() == [
        {"key": f"s{i}", "label": i} for i in range(3)
    ]
    cifar = ctx.sql(
        f"SELECT split, label, clip_embed_image('{MODEL}', image) IS NOT NULL AS embedded "
        "FROM cifar ORDER BY key"
    ).to_pylist()
    assert cifar == [
        {"split": "test", "label": 7, "embedded": True},
        {"split": "test", "label": 2, "embedded": True},
    ]
    # The same formats through SQL, via the table factories.
    ctx.sql(f"CREATE EXTERNAL TABLE sql_shards STORED AS WEBDATASET LOCATION '{shard}'")
    assert ctx.sql("SELECT count(*) AS n FROM sql_shards").to_pylist() == [{"n": 3}]
    with pytest.raises(ValueError, match="variant"):
        datafusion_clip.cifar(str(tmp_path / "test_batch.bin"), variant=42)


def cut_shard(path: Path) -> None:
    """A WEBDATASET shard of four PNG samples, cut short in the middle."""
    import io
    import tarfile

    png = (FIXTURES / "images" / "p_150x100.png").read_bytes()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for i in range(4):
            for name, member in ((f"s{i}.png", png), (f"s{i}.cls", b"1")):
                info = tarfile.TarInfo(name)
                info.size = len(member)
                tar.addfile(info, io.BytesIO(member))
    whole = data.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(whole[: len(whole) // 2])


def test_the_librarys_warnings_reach_stderr(tmp_path, capfd):
    cut_shard(tmp_path / "w" / "0.tar")
    ctx = SessionContext()
    datafusion_clip.register(ctx)
    ctx.register_table("w", datafusion_clip.webdataset(str(tmp_path / "w"), skip_unreadable=True))
    [row] = ctx.sql("SELECT count(*) AS n FROM w").to_pylist()
    assert 0 < row["n"] < 4
    err = capfd.readouterr().err
    assert "datafusion_clip: warning: WEBDATASET: skipping the rest of shard" in err, err


def test_rust_log_off_silences_the_warnings(tmp_path):
    cut_shard(tmp_path / "w" / "0.tar")
    script = (
        "import sys, datafusion, datafusion_clip\n"
        "ctx = datafusion.SessionContext()\n"
        "datafusion_clip.register(ctx)\n"
        "ctx.register_table('w', datafusion_clip.webdataset(sys.argv[1], skip_unreadable=True))\n"
        "print(ctx.sql('SELECT count(*) AS n FROM w').to_pylist()[0]['n'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "w")],
        capture_output=True,
        text=True,
        env={**os.environ, "RUST_LOG": "off"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert 0 < int(out.stdout) < 4
    assert "warning" not in out.stderr, out.stderr


def test_the_example_script_prints_accuracy_per_label(folder):
    script = REPO / "examples" / "python" / "zero_shot_folder.py"
    out = subprocess.run(
        [sys.executable, str(script), str(folder), MODEL],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("|")]
    for label in ("bird", "cat", "dog"):
        assert any(f"| {label} " in row for row in rows), out.stdout


def test_functions_carry_their_sql_signatures():
    functions = datafusion_clip.functions()
    assert set(functions) == {
        "clip_embed_image",
        "clip_embed_text",
        "clip_zero_shot",
        "clip_zero_shot_probs",
        "cosine_similarity",
        "clip_top_k",
        "clip_image_error",
        "array_argmax",
        "weighted_avg_list",
    }
    assert functions["clip_embed_image"].startswith("clip_embed_image(model, image): ")


def test_ctrl_c_stops_the_interrupted_querys_clip_work(folder):
    ctx = SessionContext(datafusion_clip.session_config(batch_size=1))
    datafusion_clip.register(ctx)
    ctx.sql(f"CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{folder}/'")
    ctx.sql(f"SELECT clip_embed_text('{MODEL}', 'warm up') AS e").collect()
    started = datafusion_clip.progress()["images_encoded"]

    def interrupt_once_under_way():
        deadline = time.monotonic() + 60
        while datafusion_clip.progress()["images_encoded"] == started:
            if time.monotonic() > deadline:
                return  # never under way: the query's own failure says why
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_once_under_way)
    sender.start()
    # About 10,000 forward passes of one image, thousands to a CLIP call:
    # tens of seconds, against the second datafusion-python takes to see
    # Ctrl-C.
    with pytest.raises(KeyboardInterrupt):
        ctx.sql(
            f"SELECT count(clip_embed_image('{MODEL}', image)) AS n "
            "FROM pets CROSS JOIN generate_series(1, 300)"
        ).collect()
    sender.join()
    at_interrupt = datafusion_clip.progress()["images_encoded"]
    # A short query on the same model: its passes queue on the model's
    # thread one for one with any the interrupted call still makes.
    embedded = ctx.sql(
        f"SELECT count(clip_embed_image('{MODEL}', image)) AS n FROM pets"
    ).to_pylist()[0]["n"]
    assert embedded == image_count(folder) - 1  # the truncated file is NULL
    after = datafusion_clip.progress()["images_encoded"] - at_interrupt
    # Its own images, and at most the one pass the interrupted call had in
    # hand (two for margin); without the stop, about as many again.
    assert after <= embedded + 2, f"{after - embedded} images encoded for the interrupted query"


def test_the_interrupt_hook_chains_the_handler_there_and_can_be_declined():
    calls = []
    before = signal.getsignal(signal.SIGINT)
    try:
        def own(signum, frame):
            calls.append(signum)

        signal.signal(signal.SIGINT, own)
        datafusion_clip.register(SessionContext(), stop_on_interrupt=False)
        assert signal.getsignal(signal.SIGINT) is own

        datafusion_clip.register(SessionContext())
        datafusion_clip.register(SessionContext())  # installed once, not stacked
        hook = signal.getsignal(signal.SIGINT)
        assert getattr(hook, "_stops_clip_work", False)
        hook(signal.SIGINT, None)
        assert calls == [signal.SIGINT], "the handler that was there still runs"

        # Nothing to chain: SIGINT's default stays the default.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        datafusion_clip.register(SessionContext())
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, before)
