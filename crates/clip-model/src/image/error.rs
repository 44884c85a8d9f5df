//! Why an image could not become pixels. Carried to SQL as a NULL's reason
//! (`clip_image_error`) or as the message of a failing query.

/// Why an image could not become pixels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A NULL where an image was expected.
    #[error("image is NULL")]
    Null,

    #[error("image is empty (0 bytes)")]
    Empty,

    /// No decoder recognises the bytes.
    #[error(
        "not a supported image (JPEG, PNG, WebP, GIF, BMP, TIFF): first bytes {first_bytes:02x?}"
    )]
    NotAnImage { first_bytes: Vec<u8> },

    /// The header declares more pixels than `clip.max_image_pixels`:
    /// refused before any pixel is allocated.
    #[error(
        "{what} is {width}x{height}, more than clip.max_image_pixels = {max_pixels} pixels \
         (decompression bomb guard)"
    )]
    TooManyPixels {
        /// "JPEG", "Png image", ...
        what: String,
        width: usize,
        height: usize,
        max_pixels: usize,
    },

    /// The short-side resize would exceed `clip.max_image_pixels` (a sliver).
    #[error(
        "image is {width}x{height}: resizing its short side to {size} makes \
         {resized_width}x{resized_height}, more than clip.max_image_pixels = {max_pixels} pixels"
    )]
    ResizeTooLarge {
        width: usize,
        height: usize,
        size: usize,
        resized_width: usize,
        resized_height: usize,
        max_pixels: usize,
    },

    #[error("image has no pixels ({width}x{height})")]
    NoPixels { width: usize, height: usize },

    /// The format was recognised but the bytes could not be read: a
    /// truncated or corrupt file. `what` names the format ("JPEG", "Png
    /// image"), `reason` is the decoder's.
    #[error("cannot decode {what}: {reason}")]
    Corrupt { what: String, reason: String },

    #[error("cannot read {format} header: {reason}")]
    BadHeader { format: String, reason: String },

    #[error("cannot read image: {reason}")]
    Unreadable { reason: String },

    /// An image the engine never reached (an internal inconsistency,
    /// reported rather than hidden).
    #[error("image was not processed")]
    NotProcessed,
}
