//! Turning names such as `ViT-L/14@336px` into parts of file names.

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
