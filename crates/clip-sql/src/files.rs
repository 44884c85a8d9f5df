//! The files `clip-sql` writes: names such as `ViT-L/14@336px` made into
//! parts of file names, and errors that name the file.

use std::path::Path;

use datafusion::error::DataFusionError;

/// An I/O error on `path`, as an error that names the path.
pub fn io_error(path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!("{}: {e}", path.display()))
}

/// `text` with every character but letters, digits and `-_.@` made `-`,
/// to be part of a file name.
pub fn file_name_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}
