//! How a shard's members form samples and columns, as webdataset and
//! CLIP_benchmark form them: a member's key and extension, which member
//! is a sample's image, which extensions are text, the table's schema, and
//! a retrieval sample's captions. The table (planning) and the scan
//! (reading) both follow these rules.

use std::collections::BTreeSet;
use std::sync::Arc;

use clip_model::image::IMAGE_EXTENSIONS;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Extensions read as text columns.
const TEXT_EXTENSIONS: [&str; 3] = ["txt", "json", "text"];
/// Split a member path into (sample key, extension) as webdataset does:
/// the extension is everything after the first dot of the file name,
/// lower-cased. `None` for a member of no sample, which webdataset skips
/// too: a name without an extension, a hidden file (`.DS_Store`, the `._x.jpg`
/// macOS's tar adds: no key before the dot) or webdataset's `__name__`
/// metadata.
pub fn split_member_name(name: &str) -> Option<(&str, String)> {
    if is_webdataset_metadata(name) {
        return None;
    }
    let file_start = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[file_start..].find('.')? + file_start;
    if dot == file_start {
        return None;
    }
    Some((&name[..dot], name[dot + 1..].to_ascii_lowercase()))
}

/// webdataset's metadata members: a top-level `__name__`, or anything
/// under a `__name__/` folder.
fn is_webdataset_metadata(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or_default();
    let metadata_folder_or_file =
        first.len() >= 4 && first.starts_with("__") && first.ends_with("__");
    let top_level = !name.contains('/') && name.starts_with("__") && name.ends_with("__");
    metadata_folder_or_file || top_level
}

/// The image extensions in the order a sample's image is chosen when it has
/// several image members: CLIP_benchmark's (`webp`, `png`, `jpg`, `jpeg`,
/// the first present), then the others this crate decodes.
pub const IMAGE_PREFERENCE: [&str; 8] = ["webp", "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff"];

/// Where an image extension stands in [`IMAGE_PREFERENCE`]; `None` for
/// other extensions.
pub fn image_rank(ext: &str) -> Option<usize> {
    IMAGE_PREFERENCE.iter().position(|known| *known == ext)
}

/// The column an extension becomes, if not `key`/`label`/`image`.
pub fn extra_column_name(extension: &str) -> String {
    extension.replace(['.', '-'], "_")
}

/// The captions column of the retrieval layout.
pub const CAPTIONS_COLUMN: &str = "captions";

/// The columns: key, label, image, then the extra extensions (sorted), then
/// `captions` for the retrieval layout.
pub fn webdataset_schema(extras: &BTreeSet<String>, captions: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("label", DataType::Int32, true),
        Field::new("image", DataType::Binary, true),
    ];
    for ext in extras {
        let t = if TEXT_EXTENSIONS.contains(&ext.as_str()) {
            DataType::Utf8
        } else {
            DataType::Binary
        };
        fields.push(Field::new(extra_column_name(ext), t, true));
    }
    if captions {
        fields.push(Field::new(
            CAPTIONS_COLUMN,
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// Lines as Python's `str.splitlines()` cuts them (what CLIP_benchmark
/// applies to a retrieval sample's `.txt`): at `\n`, `\r`, `\r\n` and
/// the other Unicode line boundaries, with no empty line after a final
/// break.
pub fn split_lines(text: &str) -> Vec<&str> {
    const BREAKS: [char; 10] = [
        '\n', '\r', '\u{0b}', '\u{0c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}',
        '\u{2029}',
    ];
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if BREAKS.contains(&c) {
            lines.push(&text[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n') {
                chars.next();
                end += 1;
            }
            start = end;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Whether an extension is one of the fixed columns' sources.
pub fn is_fixed_extension(ext: &str) -> bool {
    ext == "cls" || IMAGE_EXTENSIONS.contains(&ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_split_as_python_splitlines_does() {
        assert_eq!(split_lines("a\nb\n"), ["a", "b"]);
        assert_eq!(split_lines("a\r\nb\rc"), ["a", "b", "c"]);
        assert_eq!(split_lines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(split_lines("a\u{2028}b\u{85}c\u{0b}"), ["a", "b", "c"]);
        assert_eq!(split_lines(""), Vec::<&str>::new());
        assert_eq!(split_lines("\n"), [""]);
        assert_eq!(split_lines("one caption"), ["one caption"]);
    }

    #[test]
    fn member_names_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(
            split_member_name("a.b/s0001.seg.png"),
            Some(("a.b/s0001", "seg.png".to_string()))
        );
        assert_eq!(split_member_name("s1.JPG"), Some(("s1", "jpg".to_string())));
        assert_eq!(split_member_name("noext"), None);
        assert_eq!(extra_column_name("seg.png"), "seg_png");
        // What webdataset skips: hidden files and its metadata.
        for skipped in [
            ".DS_Store",
            "._s0001.jpg",
            "train/.hidden.png",
            "__index__",
            "__meta__/s0001.json",
            "___",
        ] {
            assert_eq!(split_member_name(skipped), None, "{skipped}");
        }
        assert_eq!(
            split_member_name("__x/s1.jpg"),
            Some(("__x/s1", "jpg".to_string()))
        );
    }

    #[test]
    fn every_image_extension_has_a_preference() {
        let mut preferred = IMAGE_PREFERENCE.to_vec();
        let mut decoded = IMAGE_EXTENSIONS.to_vec();
        preferred.sort();
        decoded.sort();
        assert_eq!(preferred, decoded);
    }
}
