//! Any bytes as a WebDataset shard, in chunks of any size: the tar reader
//! the WEBDATASET table streams shards through returns members or an error
//! (truncated, bad checksum, bad size), never panics, never holds a member
//! over its limit, and always ends.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/datafusion-clip/src/formats/webdataset/tar_stream.rs"]
#[allow(dead_code)]
mod tar_stream;

const MAX_MEMBER_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, archive)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let chunks: Vec<Result<Bytes, String>> = archive
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut tar = tar_stream::TarStream::new(futures::stream::iter(chunks))
        .with_max_member_bytes(MAX_MEMBER_BYTES);
    futures::executor::block_on(async {
        // Each member consumes at least one 512-byte header.
        for _ in 0..=archive.len() / 512 + 1 {
            match tar.next_member().await {
                Ok(Some(member)) => {
                    assert!(member.data.len() <= MAX_MEMBER_BYTES);
                    assert!(member.skipped_size.is_none() || member.data.is_empty());
                }
                Ok(None) | Err(_) => return,
            }
        }
        panic!("more members than the archive has headers");
    });
});
