#!/usr/bin/env bash
# The Python package's tests (python/tests), after `cargo test`: the
# extension module is built from the artifacts `cargo test` already built
# (the workspace's features, no second compile of DataFusion), put beside
# the package's Python sources, and run by pytest against datafusion 55 and
# pyarrow from PyPI in a virtual environment. Users install the package
# with `pip install ./python` instead (docs/python.md, "From Python").
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
venv=${CLIP_PYTHON_VENV:-$HOME/.cache/datafusion-clip/venv}

python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install -q --disable-pip-version-check 'datafusion>=55,<56' 'pyarrow>=16' 'pytest>=8' 'numpy>=1.26'

cargo build --workspace --lib --tests
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
cp -r python/python/datafusion_clip "$site/"
cp "$target/debug/lib_datafusion_clip.so" "$site/datafusion_clip/_datafusion_clip.abi3.so"
CLIP_SQL="$target/debug/clip-sql" PYTHONPATH="$site" python -m pytest -q python/tests
