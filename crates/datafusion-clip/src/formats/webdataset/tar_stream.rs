//! Tar members, one at a time, from a stream of bytes (an object-store
//! read): WebDataset shards are read as they arrive, so a shard is never
//! held whole in memory, only the member being read.
//!
//! Handles what WebDataset writers produce: POSIX ustar headers (name with
//! prefix), GNU long names (`L` entries) and PAX extended headers (`x`,
//! `path=`), octal and base-256 sizes. Directories, links and global
//! headers are skipped. The `tar` crate reads only from a blocking
//! `Read`; this reader is async over `Bytes` chunks, so a scan needs no
//! thread per shard.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

const BLOCK: usize = 512;

/// Why an archive could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("truncated: the archive ends at byte {offset} without its end-of-archive blocks")]
    NoEndOfArchive { offset: u64 },

    #[error("truncated: the archive ends inside a header at byte {offset}")]
    EndsInHeader { offset: u64 },

    #[error("truncated: member '{name}' needs {size} bytes, the archive ends first")]
    EndsInMember { name: String, size: usize },

    #[error("bad size field in the header at byte {offset}")]
    BadSize { offset: u64 },

    #[error("not a tar archive, or a corrupt one: bad header checksum at byte {offset}")]
    BadChecksum { offset: u64 },

    /// The byte stream itself failed (the object store's read).
    #[error("read failed at byte {offset}: {source}")]
    Read {
        offset: u64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One regular file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarMember {
    /// Path inside the archive.
    pub name: String,
    /// Empty when the member was skipped (`skipped_size`).
    pub data: Bytes,
    /// The member's size when it was larger than the stream's limit
    /// ([`TarStream::with_max_member_bytes`]): its data streamed past
    /// unread.
    pub skipped_size: Option<usize>,
}

/// Reads the regular files of a tar archive from a byte stream.
pub struct TarStream<S> {
    source: S,
    buffer: BytesMut,
    /// Byte offset of `buffer`'s start in the archive, for messages.
    offset: u64,
    finished: bool,
    /// Members larger than this are skipped, never held in memory.
    max_member_bytes: usize,
}

impl<S, E> TarStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    pub fn new(source: S) -> Self {
        Self {
            source,
            buffer: BytesMut::new(),
            offset: 0,
            finished: false,
            max_member_bytes: usize::MAX,
        }
    }

    /// Skip the data of members larger than `max` bytes instead of
    /// reading them (`TarMember::skipped_size` says so).
    pub fn with_max_member_bytes(self, max: usize) -> Self {
        Self {
            max_member_bytes: max,
            ..self
        }
    }

    /// The next regular file, `None` at the end of the archive. An archive
    /// that ends inside a header or a member, or without its end-of-archive
    /// blocks, is an error ("truncated").
    pub async fn next_member(&mut self) -> Result<Option<TarMember>, TarError> {
        if self.finished {
            return Ok(None);
        }
        let mut long_name: Option<String> = None;
        loop {
            if !self.fill(BLOCK).await? {
                // Every tar ends with zero blocks; an archive without them
                // was cut, even when the cut fell between two members.
                let offset = self.offset;
                return Err(if self.buffer.is_empty() {
                    TarError::NoEndOfArchive { offset }
                } else {
                    TarError::EndsInHeader { offset }
                });
            }
            let header: [u8; BLOCK] =
                self.buffer[..BLOCK]
                    .try_into()
                    .map_err(|_| TarError::EndsInHeader {
                        offset: self.offset,
                    })?;
            if header.iter().all(|&b| b == 0) {
                // End-of-archive marker.
                self.finished = true;
                return Ok(None);
            }
            check_checksum(&header, self.offset)?;
            let size = parse_size(&header[124..136]).ok_or(TarError::BadSize {
                offset: self.offset,
            })?;
            let typeflag = header[156];
            // A base-256 size near 2^64 must not wrap when padded.
            let padded = size
                .checked_next_multiple_of(BLOCK)
                .ok_or(TarError::BadSize {
                    offset: self.offset,
                })?;
            self.consume(BLOCK);
            if size > self.max_member_bytes {
                let name = long_name.take().unwrap_or_else(|| header_name(&header));
                if !self.skip(padded).await? {
                    return Err(TarError::EndsInMember { name, size });
                }
                if matches!(typeflag, b'0' | 0 | b'7') {
                    return Ok(Some(TarMember {
                        name,
                        data: Bytes::new(),
                        skipped_size: Some(size),
                    }));
                }
                // A long name or PAX header that large is not one to use.
                continue;
            }
            if !self.fill(padded).await? {
                return Err(TarError::EndsInMember {
                    name: long_name.clone().unwrap_or_else(|| header_name(&header)),
                    size,
                });
            }
            // Copied out rather than split off: a split-off member would pin
            // the buffer's whole allocation for as long as the row lives,
            // and the buffer would have to grow anew for the next member.
            let data = Bytes::copy_from_slice(&self.buffer[..size]);
            self.consume(padded);
            match typeflag {
                b'L' => {
                    // GNU long name: the data is the next member's path.
                    long_name = Some(c_string(&data));
                }
                b'x' => {
                    if let Some(path) = pax_path(&data) {
                        long_name = Some(path);
                    }
                }
                b'0' | 0 | b'7' => {
                    let name = long_name.take().unwrap_or_else(|| header_name(&header));
                    return Ok(Some(TarMember {
                        name,
                        data,
                        skipped_size: None,
                    }));
                }
                // Directories, links, global headers, devices: not data.
                _ => long_name = None,
            }
        }
    }

    /// Make `n` bytes available in the buffer; `false` if the stream ends first.
    async fn fill(&mut self, n: usize) -> Result<bool, TarError> {
        while self.buffer.len() < n {
            if !self.pull().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Pass over `n` bytes without keeping them; `false` if the stream
    /// ends first.
    async fn skip(&mut self, mut n: usize) -> Result<bool, TarError> {
        loop {
            let available = n.min(self.buffer.len());
            self.consume(available);
            n -= available;
            if n == 0 {
                return Ok(true);
            }
            if !self.pull().await? {
                return Ok(false);
            }
        }
    }

    /// Append the source's next chunk to the buffer; `false` at its end.
    async fn pull(&mut self) -> Result<bool, TarError> {
        match self.source.next().await {
            Some(Ok(chunk)) => {
                self.buffer.extend_from_slice(&chunk);
                Ok(true)
            }
            Some(Err(e)) => Err(TarError::Read {
                offset: self.offset,
                source: e.into(),
            }),
            None => Ok(false),
        }
    }

    fn consume(&mut self, n: usize) {
        self.buffer.advance(n);
        self.offset += n as u64;
    }
}

/// ustar: `prefix/name`; older formats: `name`.
fn header_name(header: &[u8; BLOCK]) -> String {
    let name = c_string(&header[0..100]);
    let ustar = &header[257..262] == b"ustar";
    let prefix = if ustar {
        c_string(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Octal (space/NUL padded) or GNU base-256 (high bit set).
fn parse_size(field: &[u8]) -> Option<usize> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return usize::try_from(value).ok();
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(digits, 8).ok()
}

/// The header checksum: the sum of its bytes with the checksum field as spaces.
fn check_checksum(header: &[u8; BLOCK], offset: u64) -> Result<(), TarError> {
    let stored = parse_size(&header[148..156]);
    let computed: usize = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                usize::from(b' ')
            } else {
                usize::from(b)
            }
        })
        .sum();
    if stored == Some(computed) {
        Ok(())
    } else {
        Err(TarError::BadChecksum { offset })
    }
}

/// The `path` record of a PAX extended header (`<len> path=<value>\n`).
fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines().find_map(|record| {
        let (_, kv) = record.split_once(' ')?;
        kv.strip_prefix("path=").map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for a regular file.
    fn header(name: &str, size: usize, typeflag: u8) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: usize = h.iter().map(|&b| usize::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn entry(name: &str, data: &[u8], typeflag: u8) -> Vec<u8> {
        let mut out = header(name, data.len(), typeflag);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    async fn members(bytes: Vec<u8>, chunk: usize) -> Result<Vec<TarMember>, String> {
        let chunks: Vec<Result<Bytes, String>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut tar = TarStream::new(futures::stream::iter(chunks));
        let mut out = Vec::new();
        while let Some(m) = tar.next_member().await.map_err(|e| e.to_string())? {
            out.push(m);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reads_files_long_names_and_skips_directories_in_any_chunking() {
        let long = format!("{}/sample.jpg", "d".repeat(150));
        let mut archive = Vec::new();
        archive.extend(entry("dir/", b"", b'5'));
        archive.extend(entry("a.cls", b"3\n", b'0'));
        archive.extend(entry("././@LongLink", format!("{long}\0").as_bytes(), b'L'));
        archive.extend(entry("ignored", &[7u8; 700], b'0'));
        archive.extend(entry("PaxHeaders/x", b"30 path=pax/named.txt\n", b'x'));
        archive.extend(entry("short", b"hello", b'0'));
        archive.extend(vec![0u8; 2 * BLOCK]);
        for chunk in [1, 100, 512, 4096] {
            let got = members(archive.clone(), chunk).await.unwrap();
            let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, ["a.cls", long.as_str(), "pax/named.txt"]);
            assert_eq!(got[1].data.len(), 700);
            assert_eq!(&got[2].data[..], b"hello");
        }
    }

    #[tokio::test]
    async fn a_size_too_large_to_pad_is_a_bad_size() {
        let mut h = header("huge.jpg", 0, b'0');
        // Base-256 2^64 - 1: a size that parses, but wraps when padded.
        h[124] = 0x80;
        h[125..128].fill(0);
        h[128..136].fill(0xff);
        h[148..156].copy_from_slice(b"        ");
        let sum: usize = h.iter().map(|&b| usize::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let err = members(h, 512).await.unwrap_err();
        assert!(err.contains("bad size"), "{err}");
    }

    #[tokio::test]
    async fn members_over_the_limit_stream_past_unread() {
        let mut archive = Vec::new();
        archive.extend(entry("a.jpg", &[1u8; 5000], b'0'));
        archive.extend(entry("a.cls", b"3", b'0'));
        archive.extend(vec![0u8; 2 * BLOCK]);
        let chunks: Vec<Result<Bytes, String>> = archive
            .chunks(700)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut tar = TarStream::new(futures::stream::iter(chunks)).with_max_member_bytes(4096);
        let big = tar.next_member().await.unwrap().unwrap();
        assert_eq!((big.name.as_str(), big.skipped_size), ("a.jpg", Some(5000)));
        assert!(big.data.is_empty());
        // Never more than one chunk of the skipped member was held.
        assert!(tar.buffer.capacity() < 4096, "{}", tar.buffer.capacity());
        let small = tar.next_member().await.unwrap().unwrap();
        assert_eq!((&small.data[..], small.skipped_size), (&b"3"[..], None));
        assert!(tar.next_member().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn truncation_and_garbage_are_errors() {
        let mut archive = entry("a.jpg", &[1u8; 2000], b'0');
        archive.truncate(1200);
        let err = members(archive, 300).await.unwrap_err();
        assert!(err.contains("truncated") && err.contains("a.jpg"), "{err}");
        let err = members(vec![b'x'; 1024], 512).await.unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        // Cut at a member boundary: still truncated (no end-of-archive blocks).
        let whole = entry("a.cls", b"1", b'0');
        let err = members(whole, 512).await.unwrap_err();
        assert!(err.contains("end-of-archive"), "{err}");
        assert!(members(vec![0u8; 1024], 512).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn reads_no_further_than_the_member_it_returns() {
        // 50 members of 100 KB: after the first, only about one member's
        // bytes have been pulled from the source.
        let mut archive = Vec::new();
        for i in 0..50 {
            archive.extend(entry(&format!("s{i}.bin"), &vec![i as u8; 100_000], b'0'));
        }
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&pulled);
        let chunks: Vec<Bytes> = archive.chunks(8192).map(Bytes::copy_from_slice).collect();
        let source = futures::stream::iter(chunks).map(move |c| {
            counter.fetch_add(c.len(), std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(c)
        });
        let mut tar = TarStream::new(Box::pin(source));
        let first = tar.next_member().await.unwrap().unwrap();
        assert_eq!(first.data.len(), 100_000);
        let read = pulled.load(std::sync::atomic::Ordering::SeqCst);
        assert!(read < 120_000, "{read} bytes pulled for one 100 KB member");
    }

    #[test]
    fn sizes_in_octal_and_base_256() {
        assert_eq!(parse_size(b"00000001750\0"), Some(1000));
        assert_eq!(parse_size(b"        \0"), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        // 5 GB: more than the 11 octal digits of a ustar size can say.
        big[4..].copy_from_slice(&5_000_000_000u64.to_be_bytes());
        assert_eq!(parse_size(&big), Some(5_000_000_000));
    }
}
