"""CLIP in SQL for datafusion-python.

The datafusion-clip functions (``clip_embed_image``, ``clip_zero_shot``, ...),
``clip_models()``, the ``IMAGEFOLDER``, ``WEBDATASET`` and ``CIFAR`` table
formats and the ``clip.*`` settings, installed in your own
``datafusion.SessionContext`` through DataFusion's FFI::

    from datafusion import SessionContext
    import datafusion_clip

    ctx = SessionContext(datafusion_clip.session_config(batch_size=64))
    datafusion_clip.register(ctx)
    ctx.sql("CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION 'pets/'")
    ctx.sql('''
        SELECT label, avg(CASE WHEN clip_zero_shot('ViT-B/32', image, ['cat', 'dog'])['label'] = label
                               THEN 1.0 ELSE 0.0 END) AS acc1
        FROM pets GROUP BY label''').to_pandas()

Results come back as datafusion-python's usual pyarrow / pandas; an
embedding column is a ``FixedSizeList<float32>``, which
:func:`embeddings_to_numpy` views as an ``(n, d)`` array without copying.

The library's warnings (a file skipped with ``skip_unreadable``, an oversized
image read as NULL) are written to stderr as ``datafusion_clip: warning: ...``;
set ``RUST_LOG=off`` before the import to silence them.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import datafusion

from . import _datafusion_clip as _native

_DATAFUSION_MAJOR = int(datafusion.__version__.split(".")[0])
if _DATAFUSION_MAJOR != _native.DATAFUSION_MAJOR:
    # Functions and table factories carry no version across the FFI: a
    # mismatch would crash rather than fail, so it is refused here.
    raise ImportError(
        f"datafusion {datafusion.__version__} is installed, but datafusion-clip "
        f"speaks DataFusion {_native.DATAFUSION_MAJOR}'s FFI: "
        f"pip install 'datafusion>={_native.DATAFUSION_MAJOR},<{_native.DATAFUSION_MAJOR + 1}'"
    )

if TYPE_CHECKING:
    import numpy
    import pyarrow

__all__ = [
    "SETTINGS",
    "cancel_running_work",
    "cifar",
    "embeddings_to_numpy",
    "functions",
    "image_folder",
    "progress",
    "register",
    "session_config",
    "webdataset",
]

#: The ``clip.*`` settings, as keyword arguments of :func:`register` and
#: :func:`session_config` (see the Settings table, docs/settings.md).
SETTINGS: tuple[str, ...] = tuple(_native.SETTINGS)


def _settings(values: dict[str, Any]) -> dict[str, str]:
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise TypeError(
            f"unknown clip setting(s) {', '.join(unknown)}; the settings are {', '.join(SETTINGS)}"
        )
    return {
        key: (str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in values.items()
        if value is not None
    }


def session_config(
    config: datafusion.SessionConfig | None = None, **settings: Any
) -> datafusion.SessionConfig:
    """A ``SessionConfig`` with the ``clip.*`` settings namespace, so that
    ``SET clip.batch_size = 64`` and ``SHOW clip.device`` work in SQL.

    ``settings`` (``device``, ``dtype``, ``batch_size``, ``on_error``,
    ``offline``, ``max_image_pixels``) start with these values; a value
    that is not valid raises ``ValueError`` here. Pass ``config`` to add the
    namespace to a config of your own. DataFusion adds a namespace only when
    the context is created: ``SessionContext(session_config(...))``.
    """
    config = config if config is not None else datafusion.SessionConfig()
    return config.with_extension(_native.clip_config(_settings(settings)))


def register(
    ctx: datafusion.SessionContext, *, stop_on_interrupt: bool = True, **settings: Any
) -> None:
    """Add every CLIP function, ``weighted_avg_list``, ``clip_models()`` and
    the ``IMAGEFOLDER``, ``WEBDATASET`` and ``CIFAR`` formats to ``ctx``.

    The SQL functions (``model`` is a constant string: ``'ViT-B/32'``, a
    local directory or ``'hf:org/repo'``):

    - ``clip_embed_image(model, image) -> FixedSizeList<Float32, D>``
    - ``clip_embed_text(model, text) -> FixedSizeList<Float32, D>``
    - ``clip_zero_shot(model, image_or_embedding, labels [, templates])
      -> Struct{label, label_index, probability, top5}``
    - ``clip_zero_shot_probs(model, image_or_embedding, labels [, templates])
      -> List<Float32>``
    - ``cosine_similarity(a, b) -> Float32``
    - ``clip_top_k(query, candidates, k) -> List<Int32>`` (0-based positions, best first)
    - ``clip_image_error([model,] image) -> Utf8`` (NULL when usable)
    - ``array_argmax(list) -> Int32``
    - ``weighted_avg_list(list, weight) -> List<Float32>`` (aggregate)
    - ``clip_models()`` (table function)

    ``settings`` are the ``clip.*`` values the functions run with. When
    ``ctx`` was created with :func:`session_config` they are applied with
    ``SET`` and SQL can change them; otherwise the functions keep them, and
    ``SET clip.*`` in SQL fails with "Could not find config namespace" —
    create the context with :func:`session_config` for that.

    What does not travel through DataFusion's FFI: the planner's rewrite
    that names a failing image's ``path`` in the error of
    ``clip.on_error = 'error'`` (the error names the row instead; select
    ``clip_image_error(image)`` beside ``path`` to find it), and the
    functions' documentation in ``information_schema``.

    Ctrl-C (``KeyboardInterrupt``, a notebook's interrupt) stops a query,
    but through the FFI its CLIP work cannot see that: a call would go on
    to the end of the batch it holds, thousands of images. With
    ``stop_on_interrupt`` (the default, when called from the main thread)
    SIGINT first calls :func:`cancel_running_work`, then the handler that
    was there, so the work stops before its next forward pass. That stops
    every CLIP call in the process: pass ``stop_on_interrupt=False`` in a
    service whose threads run queries for others.
    """
    if not isinstance(ctx, datafusion.SessionContext):
        raise TypeError(
            f"register() takes a datafusion.SessionContext, got {type(ctx).__name__}"
        )
    values = _settings(settings)
    if stop_on_interrupt:
        _stop_clip_work_on_interrupt()
    for function in _native.scalar_functions(values):
        ctx.register_udf(datafusion.udf(function))
    for function in _native.aggregate_functions():
        ctx.register_udaf(datafusion.udaf(function))
    for function in _native.table_functions():
        ctx.register_udtf(datafusion.TableFunction(function.name, function, ctx))
    for factory in _native.table_factories():
        ctx.register_table_factory(factory.format, factory)
    for key, value in values.items():
        try:
            ctx.sql(f"SET clip.{key} = '{value}'")
        except Exception as e:  # datafusion raises ValueError / Exception
            if "config namespace" not in str(e):
                raise
            # No clip.* namespace in this context: the functions keep `values`.


def cancel_running_work() -> None:
    """Stop every CLIP call running in this process before its next forward
    pass; their queries fail with a "cancelled" error. Calls that start
    afterwards are unaffected."""
    _native.cancel_running_work()


def progress() -> dict[str, int]:
    """The process's CLIP counters since it started: ``images_encoded``,
    ``images_failed`` (images that could not be decoded) and
    ``prompts_encoded``; read them twice for a rate or a progress bar."""
    return _native.progress()


def _stop_clip_work_on_interrupt() -> None:
    """Put :func:`cancel_running_work` in front of the SIGINT handler in
    effect (Python's ``KeyboardInterrupt`` one, or the caller's own), once.
    datafusion-python runs that handler while it waits for a query, then
    drops the query; no handler is installed where there is none to chain
    (``SIG_DFL``, ``SIG_IGN``) or off the main thread, where Python refuses."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or getattr(previous, "_stops_clip_work", False):
        return

    def stop_clip_work_then(signum: int, frame: Any) -> Any:
        _native.cancel_running_work()
        return previous(signum, frame)

    stop_clip_work_then._stops_clip_work = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGINT, stop_clip_work_then)


def functions() -> dict[str, str]:
    """Each SQL function :func:`register` adds, with its SQL form and what
    it computes (the documentation DataFusion's ``information_schema``
    would show, which does not cross the FFI)."""
    found = [*_native.scalar_functions(), *_native.aggregate_functions()]
    return {
        f.name: f"{f.sql_signature or f.name + '(...)'}: {f.description or ''}".rstrip(": ")
        for f in found
    }


def image_folder(location: str, *, skip_unreadable: bool = False) -> Any:
    """An ``IMAGEFOLDER`` table over ``location`` (a directory or URL:
    ``root/<class>/<file>`` gives ``(path, label, image)``), for
    ``ctx.register_table(name, ...)``. Raises ``ValueError`` with the
    message ``CREATE EXTERNAL TABLE`` would give for a bad location.
    """
    return _native.open_table(
        "IMAGEFOLDER", location, {"skip_unreadable": str(skip_unreadable).lower()}
    )


def webdataset(location: str, *, skip_unreadable: bool = False) -> Any:
    """A ``WEBDATASET`` table over tar shards (a directory, a glob, a brace
    list ``shards/{0..12}.tar`` or one ``.tar``): ``(key, label, image, ...)``."""
    return _native.open_table(
        "WEBDATASET", location, {"skip_unreadable": str(skip_unreadable).lower()}
    )


def cifar(location: str, *, variant: int | str | None = None) -> Any:
    """A ``CIFAR`` table over the CIFAR-10/100 binary batches at ``location``:
    ``(key, split, label, [coarse_label,] image)``; ``variant`` 10 or 100
    when the file names do not tell."""
    options = {} if variant is None else {"variant": str(variant)}
    return _native.open_table("CIFAR", location, options)


def embeddings_to_numpy(column: pyarrow.Array | pyarrow.ChunkedArray) -> numpy.ndarray:
    """An embedding column (``FixedSizeList<float32, d>``) as an ``(n, d)``
    float32 array: a view of Arrow's buffer, no copy, when the column is
    one chunk; NULL rows (images that could not be used) must be filtered
    out first, e.g. ``WHERE e IS NOT NULL``."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_fixed_size_list(column.type):
        raise TypeError(f"expected an embedding column (FixedSizeList<float32>), got {column.type}")
    if column.null_count:
        raise ValueError(
            f"{column.null_count} NULL embedding(s): filter them out first (WHERE e IS NOT NULL)"
        )
    width = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=True)
    return values.reshape(len(column), width)
