//! `datafusion_clip._datafusion_clip`: the datafusion-clip SQL functions,
//! `clip_models()`, the image table formats and tables, and the `clip.*`
//! settings, as Python objects that datafusion-python 55 installs in a
//! `SessionContext` of its own through DataFusion's FFI: each object hands
//! over a PyCapsule holding a datafusion-ffi struct
//! (`__datafusion_scalar_udf__`, `__datafusion_aggregate_udf__`,
//! `__datafusion_table_function__`, `__datafusion_table_provider__`,
//! `__datafusion_table_provider_factory__`,
//! `__datafusion_extension_options__`). The Python package
//! (`python/datafusion_clip/__init__.py`) wraps them in `register()`,
//! `session_config()` and the table constructors.
//!
//! This library has its own tokio runtime: the host's runtime is another
//! copy of tokio that our code cannot see. datafusion-ffi enters ours only
//! while a scan executes, so planning work that may do I/O (listing a
//! folder, reading a shard's first members, an https store) is run inside
//! it here (`InRuntime`).

// A panic across the FFI aborts the Python process: nothing here may panic.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider, TableProviderFactory};
use datafusion::common::Result;
use datafusion::common::config::ExtensionOptions;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{AggregateUDF, CreateExternalTable, Expr, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion_clip::ClipOptions;
use datafusion_ffi::config::extension_options::FFI_ExtensionOptions;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::table_provider::FFI_TableProvider;
use datafusion_ffi::table_provider_factory::FFI_TableProviderFactory;
use datafusion_ffi::udaf::FFI_AggregateUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use datafusion_ffi::udtf::FFI_TableFunction;
use pyo3::exceptions::{PyImportError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use tokio::runtime::{Handle, Runtime};

/// This library's tokio runtime, started on first use.
fn runtime() -> PyResult<&'static Runtime> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("datafusion-clip")
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

fn handle() -> PyResult<Handle> {
    Ok(runtime()?.handle().clone())
}

/// A future polled with this library's runtime entered, wherever its
/// poller runs: I/O it starts registers with our reactor, which our own
/// threads drive, and wakes the host's task when ready.
struct InRuntime<'a, T> {
    handle: Handle,
    future: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<T> Future for InRuntime<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let handle = self.handle.clone();
        let _entered = handle.enter();
        self.future.as_mut().poll(cx)
    }
}

/// One of our image tables, its planning inside our runtime.
#[derive(Debug)]
struct RuntimeTable {
    table: Arc<dyn TableProvider>,
    handle: Handle,
}

#[async_trait]
impl TableProvider for RuntimeTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        InRuntime {
            handle: self.handle.clone(),
            future: self.table.scan(state, projection, filters, limit),
        }
        .await
    }
}

/// One of our `STORED AS` formats, its `create` inside our runtime.
#[derive(Debug)]
struct RuntimeFactory {
    factory: Arc<dyn TableProviderFactory>,
    handle: Handle,
}

#[async_trait]
impl TableProviderFactory for RuntimeFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        let table = InRuntime {
            handle: self.handle.clone(),
            future: self.factory.create(state, cmd),
        }
        .await?;
        Ok(Arc::new(RuntimeTable {
            table,
            handle: self.handle.clone(),
        }))
    }
}

/// The host's logical-extension codec, from the `SessionContext`
/// datafusion-python passes (or the bare codec capsule it passes to a
/// factory), checked to speak the same DataFusion major version.
fn host_codec(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    let capsule = if session.hasattr("__datafusion_logical_extension_codec__")? {
        session.call_method0("__datafusion_logical_extension_codec__")?
    } else {
        session.clone()
    };
    let capsule = capsule.cast::<PyCapsule>()?;
    let pointer = capsule.pointer_checked(Some(c"datafusion_logical_extension_codec"))?;
    // SAFETY: a capsule of that name holds an FFI_LogicalExtensionCodec
    // (datafusion-python's `__datafusion_logical_extension_codec__`), alive
    // as long as the capsule, which outlives this call; it is cloned out.
    let codec = unsafe { pointer.cast::<FFI_LogicalExtensionCodec>().as_ref() };
    // SAFETY: `version` is a function of the codec's own library.
    let theirs = unsafe { (codec.version)() };
    let ours = datafusion_ffi::version();
    if theirs != ours {
        return Err(PyImportError::new_err(format!(
            "the installed datafusion speaks DataFusion {theirs}'s FFI, datafusion-clip \
             DataFusion {ours}'s: install datafusion>={ours},<{}",
            ours + 1
        )));
    }
    Ok(codec.clone())
}

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `clip.*` settings from Python keyword arguments (`batch_size=64` or
/// `clip.batch_size="64"`), checked as `SET` checks them.
fn settings(values: Option<&Bound<'_, PyDict>>) -> PyResult<ClipOptions> {
    let mut options = ClipOptions::default();
    for (key, value) in values.into_iter().flat_map(|d| d.iter()) {
        let key: String = key.extract()?;
        let value = value.str()?.to_string();
        options.set(&key, &value).map_err(value_error)?;
    }
    Ok(options)
}

/// A CLIP scalar function, for `datafusion.udf(...)`.
#[pyclass(frozen, module = "datafusion_clip", name = "ScalarFunction")]
struct ScalarFunction {
    udf: Arc<ScalarUDF>,
}

#[pymethods]
impl ScalarFunction {
    /// The function's SQL name.
    #[getter]
    fn name(&self) -> &str {
        self.udf.name()
    }

    /// Its SQL form, e.g. `clip_embed_image(model, image)`.
    #[getter]
    fn sql_signature(&self) -> Option<String> {
        self.udf.documentation().map(|d| d.syntax_example.clone())
    }

    /// What it computes, as `information_schema` would describe it.
    #[getter]
    fn description(&self) -> Option<String> {
        self.udf.documentation().map(|d| d.description.clone())
    }

    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let ffi = FFI_ScalarUDF::from(Arc::clone(&self.udf));
        PyCapsule::new_with_value(py, ffi, c"datafusion_scalar_udf")
    }

    fn __repr__(&self) -> String {
        format!("<datafusion_clip.ScalarFunction {}>", self.udf.name())
    }
}

/// An aggregate function, for `datafusion.udaf(...)`.
#[pyclass(frozen, module = "datafusion_clip", name = "AggregateFunction")]
struct AggregateFunction {
    udaf: Arc<AggregateUDF>,
}

#[pymethods]
impl AggregateFunction {
    #[getter]
    fn name(&self) -> &str {
        self.udaf.name()
    }

    #[getter]
    fn sql_signature(&self) -> Option<String> {
        self.udaf.documentation().map(|d| d.syntax_example.clone())
    }

    #[getter]
    fn description(&self) -> Option<String> {
        self.udaf.documentation().map(|d| d.description.clone())
    }

    fn __datafusion_aggregate_udf__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let ffi = FFI_AggregateUDF::from(Arc::clone(&self.udaf));
        PyCapsule::new_with_value(py, ffi, c"datafusion_aggregate_udf")
    }

    fn __repr__(&self) -> String {
        format!("<datafusion_clip.AggregateFunction {}>", self.udaf.name())
    }
}

/// A table function (`clip_models()`), for
/// `datafusion.TableFunction(name, ..., ctx)`.
#[pyclass(frozen, module = "datafusion_clip", name = "TableFunction")]
struct TableFunction {
    name: &'static str,
    function: Arc<dyn TableFunctionImpl>,
}

#[pymethods]
impl TableFunction {
    /// The function's SQL name.
    #[getter]
    fn name(&self) -> &'static str {
        self.name
    }

    fn __datafusion_table_function__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let ffi = FFI_TableFunction::new_with_ffi_codec(
            Arc::clone(&self.function),
            Some(handle()?),
            host_codec(&session)?,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_table_function")
    }
}

/// A `STORED AS` format, for `SessionContext.register_table_factory`.
#[pyclass(frozen, module = "datafusion_clip", name = "TableFactory")]
struct TableFactory {
    format: &'static str,
    factory: Arc<dyn TableProviderFactory>,
}

#[pymethods]
impl TableFactory {
    /// The `STORED AS` name, upper case as DataFusion looks it up.
    #[getter]
    fn format(&self) -> &'static str {
        self.format
    }

    fn __datafusion_table_provider_factory__<'py>(
        &self,
        py: Python<'py>,
        codec: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let handle = handle()?;
        let factory = Arc::new(RuntimeFactory {
            factory: Arc::clone(&self.factory),
            handle: handle.clone(),
        });
        let ffi = FFI_TableProviderFactory::new_with_ffi_codec(
            factory,
            Some(handle),
            host_codec(&codec)?,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_table_provider_factory")
    }

    fn __repr__(&self) -> String {
        format!("<datafusion_clip.TableFactory {}>", self.format)
    }
}

/// An image table, for `SessionContext.register_table(name, ...)`.
#[pyclass(frozen, module = "datafusion_clip", name = "Table")]
struct Table {
    table: Arc<dyn TableProvider>,
    description: String,
}

#[pymethods]
impl Table {
    /// The table's column names.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn __datafusion_table_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let handle = handle()?;
        let table = Arc::new(RuntimeTable {
            table: Arc::clone(&self.table),
            handle: handle.clone(),
        });
        let ffi = FFI_TableProvider::new_with_ffi_codec(
            table,
            false,
            Some(handle),
            host_codec(&session)?,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_table_provider")
    }

    fn __repr__(&self) -> String {
        format!("<datafusion_clip.Table {}>", self.description)
    }
}

/// The `clip.*` settings namespace, for `SessionConfig.with_extension`.
#[pyclass(frozen, module = "datafusion_clip", name = "ClipConfig")]
struct ClipConfig {
    options: ClipOptions,
}

#[pymethods]
impl ClipConfig {
    fn __datafusion_extension_options__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let mut ffi = FFI_ExtensionOptions::default();
        // `entries()` keys are already `clip.<name>`, as SET and SHOW name them.
        for entry in self.options.entries() {
            if let Some(value) = entry.value {
                ExtensionOptions::set(&mut ffi, &entry.key, &value).map_err(value_error)?;
            }
        }
        PyCapsule::new_with_value(py, ffi, c"datafusion_extension_options")
    }
}

/// Every CLIP scalar function, with `settings` as the values they run with
/// when the session has none of its own.
#[pyfunction]
#[pyo3(signature = (settings=None))]
fn scalar_functions(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<ScalarFunction>> {
    let options = self::settings(settings)?;
    Ok(datafusion_clip::scalar_functions(&options)
        .into_iter()
        .map(|udf| ScalarFunction { udf: Arc::new(udf) })
        .collect())
}

/// Every aggregate function (`weighted_avg_list`).
#[pyfunction]
fn aggregate_functions() -> Vec<AggregateFunction> {
    datafusion_clip::aggregate_functions()
        .into_iter()
        .map(|udaf| AggregateFunction {
            udaf: Arc::new(udaf),
        })
        .collect()
}

/// Every table function (`clip_models()`).
#[pyfunction]
fn table_functions() -> Vec<TableFunction> {
    datafusion_clip::table_functions()
        .into_iter()
        .map(|table_function| TableFunction {
            name: table_function.name,
            function: table_function.function,
        })
        .collect()
}

/// Every image table format (`IMAGEFOLDER`, `WEBDATASET`, `CIFAR`).
#[pyfunction]
fn table_factories() -> Vec<TableFactory> {
    datafusion_clip::table_formats()
        .into_iter()
        .map(|format| TableFactory {
            format: format.name,
            factory: format.factory,
        })
        .collect()
}

/// The `clip.*` namespace holding `settings`.
#[pyfunction]
#[pyo3(signature = (settings=None))]
fn clip_config(settings: Option<&Bound<'_, PyDict>>) -> PyResult<ClipConfig> {
    Ok(ClipConfig {
        options: self::settings(settings)?,
    })
}

/// An image table of `format` at `location` with `options` (as `CREATE
/// EXTERNAL TABLE ... OPTIONS (...)` takes them), made the way SQL makes it:
/// the same checks, the same messages.
#[pyfunction]
#[pyo3(signature = (format, location, options=None))]
fn open_table(
    py: Python<'_>,
    format: &str,
    location: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Table> {
    if !table_factories()
        .iter()
        .any(|factory| factory.format == format)
    {
        let known: Vec<&str> = datafusion_clip::table_formats()
            .iter()
            .map(|known| known.name)
            .collect();
        return Err(value_error(format!(
            "no image table format '{format}': {}",
            known.join(", ")
        )));
    }
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let mut pairs = Vec::new();
    for (key, value) in options.into_iter().flat_map(|d| d.iter()) {
        let key: String = key.extract()?;
        pairs.push(format!(
            "{} {}",
            quote(&key),
            quote(&value.str()?.to_string())
        ));
    }
    let mut sql = format!(
        "CREATE EXTERNAL TABLE t STORED AS {format} LOCATION {}",
        quote(location)
    );
    if !pairs.is_empty() {
        sql.push_str(&format!(" OPTIONS ({})", pairs.join(", ")));
    }
    let runtime = runtime()?;
    let table = py
        .detach(|| {
            runtime.block_on(async {
                let ctx = SessionContext::new_with_config(datafusion_clip::session_config());
                datafusion_clip::register(&ctx)?;
                ctx.sql(&sql).await?;
                ctx.table_provider("t").await
            })
        })
        .map_err(value_error)?;
    Ok(Table {
        table,
        description: format!("{format} {location}"),
    })
}

/// Stop every CLIP call running in this process before its next forward
/// pass (`datafusion_clip::engine::cancel_running_work`): through the FFI
/// a dropped query cannot stop its own calls, so this is how an interrupt
/// reaches them.
#[pyfunction]
fn cancel_running_work() {
    datafusion_clip::cancel_running_work();
}

/// The process's CLIP counters: images encoded, images that failed,
/// prompts encoded.
#[pyfunction]
fn progress(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let now = datafusion_clip::progress();
    let counters = PyDict::new(py);
    counters.set_item("images_encoded", now.images_encoded)?;
    counters.set_item("images_failed", now.images_failed)?;
    counters.set_item("prompts_encoded", now.prompts_encoded)?;
    Ok(counters)
}

/// The library's warnings (a file skipped with `skip_unreadable`, a GPU
/// that could not be opened, an oversized image read as NULL) written to
/// stderr as `datafusion_clip: warning: …`, as `clip-sql` writes them;
/// `RUST_LOG` chooses others (`RUST_LOG=off`, `RUST_LOG=info`).
///
/// Straight to stderr rather than into Python's `logging`: a record is
/// often written on one of this library's threads while a Python thread
/// holding the GIL waits for that very thread (a folder listed while
/// `ctx.sql(...)` plans), so taking the GIL to log could deadlock.
fn init_logging() {
    let default = "datafusion_clip=warn,clip_model=warn";
    // Another extension module of the process has its own copy of `log`,
    // so this fails only if this module is initialised twice: keep the first.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|out, record| {
            use std::io::Write;
            let level = record.level().as_str().to_lowercase();
            let level = if level == "warn" { "warning" } else { &level };
            writeln!(out, "datafusion_clip: {level}: {}", record.args())
        })
        .try_init();
}

#[pymodule]
fn _datafusion_clip(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add_class::<ScalarFunction>()?;
    m.add_class::<AggregateFunction>()?;
    m.add_class::<TableFunction>()?;
    m.add_class::<TableFactory>()?;
    m.add_class::<Table>()?;
    m.add_class::<ClipConfig>()?;
    m.add_function(wrap_pyfunction!(scalar_functions, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_functions, m)?)?;
    m.add_function(wrap_pyfunction!(table_functions, m)?)?;
    m.add_function(wrap_pyfunction!(table_factories, m)?)?;
    m.add_function(wrap_pyfunction!(clip_config, m)?)?;
    m.add_function(wrap_pyfunction!(open_table, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_running_work, m)?)?;
    m.add_function(wrap_pyfunction!(progress, m)?)?;
    // The clip.* setting names, as register() and session_config() take them.
    let setting_names: Vec<String> = ClipOptions::default()
        .entries()
        .into_iter()
        .map(|entry| entry.key.trim_start_matches("clip.").to_string())
        .collect();
    m.add("SETTINGS", setting_names)?;
    // The DataFusion major version whose FFI this library speaks.
    m.add("DATAFUSION_MAJOR", datafusion_ffi::version())?;
    Ok(())
}
