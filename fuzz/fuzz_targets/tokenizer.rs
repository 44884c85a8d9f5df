//! Any text through CLIP's tokenizer: ftfy-style clean-up, the split
//! regex and byte-level BPE. It must give at most 77 ids that start with
//! `<start_of_text>` and end with `<end_of_text>`, never panic.
#![no_main]

use clip_model::ClipTokenizer;
use libfuzzer_sys::fuzz_target;

const START: u32 = 49406;
const END: u32 = 49407;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tokens = ClipTokenizer::shared().tokenize(&text, 77);
    let ids = &tokens.ids;
    assert!(ids.len() >= 2 && ids.len() <= 77, "{} ids", ids.len());
    assert_eq!(ids.first(), Some(&START));
    assert_eq!(ids.last(), Some(&END));
    // A literal `<end_of_text>` in the text is that token, as in open_clip.
    assert!(ids.iter().all(|&id| id <= END));
});
