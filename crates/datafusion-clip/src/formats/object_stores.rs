//! Making sure a table location's object store is registered.
//!
//! `clip-sql` registers stores the way datafusion-cli does before a
//! `CREATE EXTERNAL TABLE` reaches us. A service that only called
//! [`crate::register`] gets the same convenience here: the first table on an
//! `https://host`, `s3://bucket`, `gs://bucket` or `az://container` location
//! registers a store built from the environment (credentials as each cloud's
//! SDK reads them). A store the application registered itself always wins.

use std::sync::Arc;

use datafusion::common::{Result, plan_err};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

/// The object-store path a scan stored as text (`Path::as_ref`, what a
/// listing returned), back as the same path. `Path::from` would encode it
/// again: `café` becomes `caf%C3%A9` and `100%` becomes `100%25`, naming
/// files that do not exist.
pub fn stored_path(location: &str) -> Result<Path> {
    Path::parse(location).map_err(|e| {
        datafusion::error::DataFusionError::Execution(format!(
            "invalid object-store path '{location}': {e}"
        ))
    })
}

/// An object-store error as a line a person reads: the HTML error page an
/// http(s) server sent, which the store quotes whole after the status
/// line, is left out.
pub fn store_error_text(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    // Lower-casing ASCII keeps every byte offset.
    let lower = text.to_ascii_lowercase();
    match ["<!doctype", "<html"]
        .iter()
        .filter_map(|tag| lower.find(tag))
        .min()
    {
        Some(page) => format!(
            "{} (the server's HTML error page left out)",
            text[..page].trim_end().trim_end_matches(':')
        ),
        None => text,
    }
}

/// Refuse a local location that is neither a regular file nor a directory
/// (a FIFO, a socket, a device) before anything opens it: the local store
/// opens a file even to read its size, and opening a FIFO waits for a
/// writer, forever. Other stores and paths that do not exist (globs, files
/// yet to be listed) pass.
pub fn refuse_special_local_file(table_url: &ListingTableUrl) -> Result<()> {
    let url: &Url = table_url.as_ref();
    if url.scheme() != "file" {
        return Ok(());
    }
    let Ok(path) = url.to_file_path() else {
        return Ok(());
    };
    match std::fs::metadata(&path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => plan_err!(
            "{} is not a regular file or a directory (a FIFO, socket or device?): image \
             tables read files",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Register a store for `table_url` unless one is already registered.
pub fn ensure_object_store(runtime: &RuntimeEnv, table_url: &ListingTableUrl) -> Result<()> {
    if runtime.object_store(table_url).is_ok() {
        return Ok(());
    }
    let url: &Url = table_url.as_ref();
    let store = store_for_url(url)?;
    let base = Url::parse(&format!("{}://{}", url.scheme(), url.authority())).map_err(|e| {
        datafusion::error::DataFusionError::Plan(format!("invalid location {url}: {e}"))
    })?;
    runtime.register_object_store(&base, store);
    Ok(())
}

/// The store a scan reads from, registered from the environment first if
/// this runtime has none: a scan planned in one process (a Ballista client)
/// runs in another (an executor), whose runtime saw no `CREATE EXTERNAL
/// TABLE`.
pub fn scan_object_store(
    runtime: &RuntimeEnv,
    store_url: &ObjectStoreUrl,
) -> Result<Arc<dyn ObjectStore>> {
    if let Ok(store) = runtime.object_store(store_url) {
        return Ok(store);
    }
    let url: &Url = store_url.as_ref();
    let store = store_for_url(url)?;
    runtime.register_object_store(url, Arc::clone(&store));
    Ok(store)
}

fn store_for_url(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let scheme = url.scheme();
    let host = url.host_str().unwrap_or_default();
    match scheme {
        "http" | "https" => {
            let base = format!("{scheme}://{}", url.authority());
            // The user wrote http:// themselves: allow it (object_store
            // refuses plain http unless told).
            let client = object_store::ClientOptions::new().with_allow_http(scheme == "http");
            Ok(Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(base)
                    .with_client_options(client)
                    .build()?,
            ))
        }
        #[cfg(feature = "cloud")]
        "s3" | "s3a" => Ok(Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(host)
                .build()?,
        )),
        #[cfg(feature = "cloud")]
        "gs" | "gcs" => Ok(Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(host)
                .build()?,
        )),
        #[cfg(feature = "cloud")]
        "az" | "azure" | "abfs" | "abfss" => Ok(Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        )),
        _ => plan_err!(
            "no object store for '{scheme}://{host}': local paths, file://, http(s)://{} are supported; \
             register your own store with SessionContext::register_object_store",
            if cfg!(feature = "cloud") {
                ", s3://, gs:// and az://"
            } else {
                " (build with the `cloud` feature for s3://, gs://, az://)"
            }
        ),
    }
}
