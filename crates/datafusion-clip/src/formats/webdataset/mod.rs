//! `CREATE EXTERNAL TABLE t STORED AS WEBDATASET LOCATION '<shards>'`:
//! WebDataset tar shards as a table, one row per sample.
//!
//! The location is a directory (every `.tar` under it; over http(s), which
//! cannot list, the `0.tar .. n-1.tar` its `nshards.txt` announces, as in
//! CLIP_benchmark's layout), a glob (`shards/*.tar`), a brace list
//! (`test/{0..12}.tar`, `{a,b}.tar`) or one `.tar`, local or a URL. Members
//! sharing a key (the path up to the first dot of the file name) form a
//! sample: `key`, `label` (the integer in `.cls`, NULL when absent), `image`
//! (the first `.jpg`/`.jpeg`/`.png`/`.webp`/... member) and one column per
//! other extension seen in the first samples of the first shard (`txt`,
//! `json`: text; others: bytes). In CLIP_benchmark's retrieval layout (a
//! `dataset_type.txt` reading `retrieval` beside the shards or one folder
//! up), the table also has `captions`: the sample's `.txt` split into lines
//! as CLIP_benchmark splits it (Python's `str.splitlines`), one caption per
//! line. Those rules are `samples.rs`; the table and its factory are here,
//! what the scan reads is `scan.rs`.

pub mod samples;
pub mod scan;
pub mod tar_stream;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{CreateExternalTable, Expr};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use self::samples::{is_fixed_extension, split_member_name, webdataset_schema};
use self::scan::{Shard, WebDatasetExec, WebDatasetScan};
use self::tar_stream::TarStream;
use super::image_scan::{
    one_location, projection_or_all, refuse_unused_clauses, scan_batch_rows, skip_unreadable_option,
};
use crate::config::{ClipOptions, OnErrorSetting};

use super::object_stores::{
    ensure_object_store, refuse_special_local_file, store_error_text, stored_path,
};
/// Samples of the first shard read to find the extra columns.
const SAMPLES_FOR_SCHEMA: usize = 32;

/// Creates [`WebDatasetTable`]s for `CREATE EXTERNAL TABLE ... STORED AS WEBDATASET`.
#[derive(Debug, Default)]
pub struct WebDatasetFactory;

#[async_trait]
impl TableProviderFactory for WebDatasetFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        refuse_unused_clauses("WEBDATASET", cmd)?;
        let skip_unreadable = skip_unreadable_option(
            "WEBDATASET",
            cmd,
            "a shard that cannot be read is skipped and counted",
        )?;
        if !cmd.schema.fields().is_empty() {
            return plan_err!(
                "WEBDATASET tables take their columns from the shards' members; leave the column list out"
            );
        }
        let location = one_location(
            "WEBDATASET",
            cmd,
            "write several shards as a brace list, e.g. 'shards/{0..12}.tar'",
        )?;
        let table = WebDatasetTable::try_new(state, location, skip_unreadable).await?;
        Ok(Arc::new(table))
    }
}

/// What a [`WebDatasetTable`] is made of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebDatasetTableParts {
    pub location: String,
    pub store_url: String,
    pub shards: Vec<Shard>,
    pub extras: BTreeSet<String>,
    pub skip_unreadable: bool,
    /// CLIP_benchmark's retrieval layout: a `captions` column.
    #[serde(default)]
    pub captions: bool,
}

/// A set of WebDataset shards.
#[derive(Debug, Clone)]
pub struct WebDatasetTable {
    location: String,
    store_url: ObjectStoreUrl,
    /// Object-store paths of the shards, in order.
    shards: Vec<Shard>,
    extras: BTreeSet<String>,
    schema: SchemaRef,
    skip_unreadable: bool,
    captions: bool,
}

impl WebDatasetTable {
    /// Find the shards of `location` and read the first samples for the schema.
    pub async fn try_new(
        state: &dyn Session,
        location: &str,
        skip_unreadable: bool,
    ) -> Result<Self> {
        let (store_url, shards) = find_shards(state, location).await?;
        let Some(first) = shards.first() else {
            return plan_err!("no WebDataset shards (.tar files) at {location}");
        };
        let store = state.runtime_env().object_store(&store_url)?;
        let extras = extra_extensions(&store, &shards, skip_unreadable).await?;
        let captions = extras.contains("txt") && is_retrieval_layout(&store, first).await;
        Ok(Self {
            location: location.to_string(),
            store_url,
            schema: webdataset_schema(&extras, captions),
            shards,
            extras,
            skip_unreadable,
            captions,
        })
    }

    /// What the table is made of, to rebuild it in another process with
    /// [`Self::from_parts`] (`crate::codec`) without listing the shards or
    /// reading samples again.
    pub fn to_parts(&self) -> WebDatasetTableParts {
        WebDatasetTableParts {
            location: self.location.clone(),
            store_url: self.store_url.as_str().to_string(),
            shards: self.shards.clone(),
            extras: self.extras.clone(),
            skip_unreadable: self.skip_unreadable,
            captions: self.captions,
        }
    }

    pub fn from_parts(parts: WebDatasetTableParts) -> Result<Self> {
        Ok(Self {
            location: parts.location,
            store_url: ObjectStoreUrl::parse(&parts.store_url)?,
            schema: webdataset_schema(&parts.extras, parts.captions),
            shards: parts.shards,
            extras: parts.extras,
            skip_unreadable: parts.skip_unreadable,
            captions: parts.captions,
        })
    }
}

/// Expand `{a,b}` and `{0..12}` (zero-padded as written: `{000..012}`).
pub fn expand_braces(pattern: &str) -> Result<Vec<String>> {
    let Some(open) = pattern.find('{') else {
        return Ok(vec![pattern.to_string()]);
    };
    let Some(close) = pattern[open..].find('}').map(|i| i + open) else {
        return plan_err!("unclosed '{{' in WEBDATASET location '{pattern}'");
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let alternatives: Vec<String> = if let Some((from, to)) = body.split_once("..") {
        let (Ok(a), Ok(b)) = (from.parse::<u64>(), to.parse::<u64>()) else {
            return plan_err!("'{{{body}}}' in '{pattern}' is not a range like {{0..12}}");
        };
        if a > b || b - a > 1_000_000 {
            return plan_err!("'{{{body}}}' in '{pattern}' is not an increasing range");
        }
        let width = if from.starts_with('0') && from.len() > 1 {
            from.len()
        } else {
            0
        };
        (a..=b).map(|i| format!("{i:0width$}")).collect()
    } else {
        body.split(',').map(str::to_string).collect()
    };
    let mut out = Vec::new();
    for alternative in alternatives {
        out.extend(expand_braces(&format!("{head}{alternative}{tail}"))?);
    }
    Ok(out)
}

/// The object store and shards of a location.
async fn find_shards(state: &dyn Session, location: &str) -> Result<(ObjectStoreUrl, Vec<Shard>)> {
    let expanded = expand_braces(location)?;
    let mut shards = Vec::new();
    let mut store_url: Option<ObjectStoreUrl> = None;
    for item in &expanded {
        let url = ListingTableUrl::parse(item)?;
        ensure_object_store(state.runtime_env(), &url)?;
        refuse_special_local_file(&url)?;
        let this_store = url.object_store();
        if let Some(existing) = &store_url
            && existing.as_str() != this_store.as_str()
        {
            return plan_err!(
                "the shards of one WEBDATASET table must share one store: {location}"
            );
        }
        store_url = Some(this_store);
        let store = state.runtime_env().object_store(&url)?;
        let is_file = !url.is_collection() && !item.contains(['*', '?', '[']);
        if expanded.len() > 1 || (is_file && item.ends_with(".tar")) {
            // A named shard: no listing (an https store cannot list).
            shards.push(Shard {
                location: url.prefix().to_string(),
                name: item.clone(),
            });
            continue;
        }
        let scheme = <ListingTableUrl as AsRef<url::Url>>::as_ref(&url).scheme();
        if url.is_collection() && matches!(scheme, "http" | "https") {
            // An http(s) directory cannot be listed: CLIP_benchmark's layout
            // says how many shards it has in nshards.txt (0.tar .. n-1.tar).
            shards.extend(shards_from_count_file(&store, &url, item).await?);
            continue;
        }
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(url.prefix()))
            .try_collect()
            .await
            .map_err(|e| {
                DataFusionError::Execution(format!("cannot list {item}: {}", store_error_text(&e)))
            })?;
        let mut found: Vec<Shard> = listed
            .into_iter()
            .filter(|meta| meta.location.as_ref().ends_with(".tar"))
            .filter(|meta| url.contains(&meta.location, false))
            .map(|meta| Shard {
                name: meta.location.to_string(),
                location: meta.location.to_string(),
            })
            .collect();
        found.sort_by(|a, b| a.location.cmp(&b.location));
        shards.extend(found);
    }
    let Some(store_url) = store_url else {
        return plan_err!("empty WEBDATASET location");
    };
    Ok((store_url, shards))
}

/// The shards `0.tar .. n-1.tar` of a directory whose `nshards.txt` says `n`.
async fn shards_from_count_file(
    store: &Arc<dyn object_store::ObjectStore>,
    url: &ListingTableUrl,
    item: &str,
) -> Result<Vec<Shard>> {
    let dir = url.prefix().to_string();
    let count_path = stored_path(format!("{dir}/nshards.txt").trim_start_matches('/'))?;
    let text = match store.get(&count_path).await {
        Ok(result) => result.bytes().await.map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot read {item}nshards.txt: {}",
                store_error_text(&e)
            ))
        })?,
        Err(e) => {
            return plan_err!(
                "{item} cannot be listed over http(s) and has no readable nshards.txt ({}); \
                 name the shards instead, e.g. '{item}{{0..9}}.tar'",
                store_error_text(&e)
            );
        }
    };
    let text = String::from_utf8_lossy(&text);
    let Ok(count) = text.trim().parse::<usize>() else {
        return plan_err!(
            "{item}nshards.txt should hold the number of shards, got '{}'",
            text.trim().chars().take(40).collect::<String>()
        );
    };
    Ok((0..count)
        .map(|i| {
            let location = format!("{dir}/{i}.tar");
            Shard {
                location: location.trim_start_matches('/').to_string(),
                name: format!("{item}{i}.tar"),
            }
        })
        .collect())
}

/// Whether the shards are in CLIP_benchmark's retrieval layout: a
/// `dataset_type.txt` reading `retrieval` in the first shard's folder or
/// the one above it (`<dataset>/dataset_type.txt`, `<dataset>/test/0.tar`).
/// Unreadable or absent means no.
async fn is_retrieval_layout(store: &Arc<dyn object_store::ObjectStore>, shard: &Shard) -> bool {
    let mut folder = shard.location.as_str();
    for _ in 0..2 {
        folder = folder.rfind('/').map_or("", |i| &folder[..i]);
        let candidate = if folder.is_empty() {
            "dataset_type.txt".to_string()
        } else {
            format!("{folder}/dataset_type.txt")
        };
        let Ok(path) = stored_path(&candidate) else {
            continue;
        };
        if let Ok(found) = store.get(&path).await
            && let Ok(bytes) = found.bytes().await
        {
            return String::from_utf8_lossy(&bytes)
                .trim()
                .eq_ignore_ascii_case("retrieval");
        }
        if folder.is_empty() {
            break;
        }
    }
    false
}

/// Extensions other than the fixed columns' in the first samples: those of
/// the first shard. A shard that cannot be read fails the table, as its
/// scan would; with `skip_unreadable` the samples read before the damage
/// count, and the next shard is sampled too.
async fn extra_extensions(
    store: &Arc<dyn object_store::ObjectStore>,
    shards: &[Shard],
    skip_unreadable: bool,
) -> Result<BTreeSet<String>> {
    let mut extras = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for shard in shards {
        match sample_extensions(store, shard, &mut keys, &mut extras).await {
            Ok(()) => break,
            Err(reason) if skip_unreadable => {
                log::warn!(
                    "WEBDATASET: reading the columns, skipping the rest of shard {}: {}",
                    shard.name,
                    store_error_text(&reason)
                );
                if keys.len() > SAMPLES_FOR_SCHEMA {
                    break;
                }
            }
            Err(reason) => {
                return exec_err!(
                    "cannot read WebDataset shard {}: {} (OPTIONS ('skip_unreadable' \
                     'true') on the table skips such shards and counts them)",
                    shard.name,
                    store_error_text(&reason)
                );
            }
        }
    }
    Ok(extras)
}

/// Add the keys and extra extensions of `shard`'s first samples (up to
/// [`SAMPLES_FOR_SCHEMA`] keys in all) to `keys` and `extras`; why the
/// shard could not be read to there, if it could not.
async fn sample_extensions(
    store: &Arc<dyn object_store::ObjectStore>,
    shard: &Shard,
    keys: &mut BTreeSet<String>,
    extras: &mut BTreeSet<String>,
) -> std::result::Result<(), String> {
    let location = stored_path(&shard.location).map_err(|e| e.to_string())?;
    let stream = store
        .get(&location)
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    // Only the members' names matter here: their data streams past unread.
    let mut tar = TarStream::new(stream).with_max_member_bytes(0);
    while let Some(member) = tar.next_member().await.map_err(|e| e.to_string())? {
        let Some((key, ext)) = split_member_name(&member.name) else {
            continue;
        };
        keys.insert(key.to_string());
        if keys.len() > SAMPLES_FOR_SCHEMA {
            break;
        }
        if !is_fixed_extension(&ext) {
            extras.insert(ext);
        }
    }
    Ok(())
}

#[async_trait]
impl TableProvider for WebDatasetTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ClipOptions::from_config(state.config_options());
        let source = WebDatasetScan {
            limit,
            skip_unreadable: self.skip_unreadable,
            max_image_bytes: options.max_image_bytes,
            oversized_is_error: options.on_error == OnErrorSetting::Error,
            captions: self.captions,
            ..WebDatasetScan::new(
                &self.shards,
                self.extras.clone(),
                state.config_options().execution.target_partitions,
                scan_batch_rows(state),
            )
        };
        let projection = projection_or_all(projection, &self.schema);
        Ok(Arc::new(WebDatasetExec::try_new(
            &self.store_url,
            projection,
            source,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_expand_ranges_lists_and_padding() {
        assert_eq!(
            expand_braces("s/{0..2}.tar").unwrap(),
            ["s/0.tar", "s/1.tar", "s/2.tar"]
        );
        assert_eq!(
            expand_braces("s/{008..010}.tar").unwrap(),
            ["s/008.tar", "s/009.tar", "s/010.tar"]
        );
        assert_eq!(
            expand_braces("{a,b}/{0..1}.tar").unwrap(),
            ["a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"]
        );
        assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
        assert!(expand_braces("s/{3..1}.tar").is_err());
        assert!(expand_braces("s/{0..x}.tar").is_err());
        assert!(expand_braces("s/{0..1.tar").is_err());
    }
}
