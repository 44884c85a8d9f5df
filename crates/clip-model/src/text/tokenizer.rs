//! CLIP's byte-level BPE tokenizer, as OpenAI's `clip.tokenize` computes it.
//!
//! Reference: `simple_tokenizer.py` of <https://github.com/openai/CLIP> (MIT),
//! reproduced by open_clip's `SimpleTokenizer` and Hugging Face's
//! `CLIPTokenizer`. The merges are the first 48,894 lines of the reference's
//! `bpe_simple_vocab_16e6.txt.gz`, shipped gzip-compressed inside the crate
//! (`clip_bpe_merges.txt.gz`, 208 KB): tokenizing never needs a network.
//!
//! The vocabulary is derived, not stored: ids 0..256 are the 256 byte
//! symbols, 256..512 the same symbols with the end-of-word marker `</w>`,
//! `512 + r` the token made by merge rank `r`, then `<|startoftext|>` and
//! `<|endoftext|>`. So BPE can run on ids alone: a merge of rank `r` always
//! produces id `512 + r`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::LazyLock;

use regex::Regex;

use super::clean::clean_text;

/// Number of tokens a CLIP text tower reads.
pub const CONTEXT_LENGTH: usize = 77;
/// `<|startoftext|>`
pub const START_OF_TEXT: u32 = 49406;
/// `<|endoftext|>`
pub const END_OF_TEXT: u32 = 49407;
/// Size of the vocabulary, special tokens included.
pub const VOCAB_SIZE: usize = 49408;

const MERGES_GZ: &[u8] = include_bytes!("clip_bpe_merges.txt.gz");
const MERGE_COUNT: usize = 49152 - 256 - 2;
const FIRST_MERGED_ID: u32 = 512;

/// A prompt turned into token ids: `<|startoftext|>`, the BPE ids,
/// `<|endoftext|>`, truncated to the context length with the end token kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
}

impl Tokens {
    /// Position the text tower pools at: the first occurrence of the largest
    /// id, as `argmax` does in the reference. That is the end-of-text token
    /// (the largest id), or an earlier literal `<end_of_text>` in the prompt.
    pub fn pool_position(&self) -> usize {
        let max = self.ids.iter().copied().max().unwrap_or(0);
        self.ids.iter().position(|&id| id == max).unwrap_or(0)
    }
}

/// CLIP's tokenizer. Cheap to share: build it once with [`ClipTokenizer::shared`].
#[derive(Debug)]
pub struct ClipTokenizer {
    /// (left id, right id) -> merge rank.
    ranks: HashMap<(u32, u32), u32>,
    /// Byte value -> id of its symbol (without `</w>`).
    byte_ids: [u32; 256],
    pattern: Regex,
    /// Distinct token strings, special tokens included (49,408 when every
    /// merge yields a new token, which the reference's id scheme relies on).
    vocab_size: usize,
}

static SHARED: LazyLock<ClipTokenizer> = LazyLock::new(ClipTokenizer::build);

impl ClipTokenizer {
    /// The process-wide tokenizer (the merges are decoded once).
    pub fn shared() -> &'static ClipTokenizer {
        &SHARED
    }

    fn build() -> ClipTokenizer {
        let byte_chars = bytes_to_unicode();
        // Symbol string -> id, for the 512 base symbols only: merged tokens
        // never need a lookup because their id follows from their rank.
        let mut base: HashMap<String, u32> = HashMap::with_capacity(512);
        let mut byte_ids = [0u32; 256];
        for (i, (byte, ch)) in byte_chars.iter().enumerate() {
            base.insert(ch.to_string(), i as u32);
            base.insert(format!("{ch}</w>"), (i + 256) as u32);
            byte_ids[*byte as usize] = i as u32;
        }
        let mut text = String::new();
        // The merges are compiled into the binary: failing to decode them is
        // a build defect, not a runtime condition.
        #[allow(clippy::expect_used)]
        flate2::read::GzDecoder::new(MERGES_GZ)
            .read_to_string(&mut text)
            .expect("embedded BPE merges are valid gzip");
        // Token string -> id, growing as merges create tokens that later
        // merges combine.
        let mut id_of_token: HashMap<String, u32> = base;
        let mut ranks = HashMap::with_capacity(MERGE_COUNT);
        for (rank, line) in text.lines().take(MERGE_COUNT).enumerate() {
            let mut parts = line.split(' ');
            let (Some(left), Some(right)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Some(&l), Some(&r)) = (id_of_token.get(left), id_of_token.get(right)) else {
                continue;
            };
            let merged_id = FIRST_MERGED_ID + rank as u32;
            ranks.insert((l, r), rank as u32);
            id_of_token
                .entry(format!("{left}{right}"))
                .or_insert(merged_id);
        }
        let vocab_size = id_of_token.len() + 2;
        // The pattern is a constant that is known to compile.
        #[allow(clippy::expect_used)]
        let pattern = Regex::new(
            r"(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .expect("CLIP split pattern compiles");
        ClipTokenizer {
            ranks,
            byte_ids,
            pattern,
            vocab_size,
        }
    }

    /// Number of distinct tokens, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// BPE ids of `text`, without start/end tokens and without truncation.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = clean_text(text);
        let mut ids = Vec::new();
        for piece in self.pattern.find_iter(&text) {
            match piece.as_str() {
                // open_clip seeds its BPE cache with its spellings of the
                // special tokens, so those literals in a prompt become their
                // ids. (OpenAI's original tokenizer spells them
                // `<|startoftext|>` / `<|endoftext|>`; open_clip reads those
                // as ordinary text, and so do we.)
                "<start_of_text>" => ids.push(START_OF_TEXT),
                "<end_of_text>" => ids.push(END_OF_TEXT),
                word => self.bpe_word(word.as_bytes(), &mut ids),
            }
        }
        ids
    }

    /// Token ids for one prompt: `<|startoftext|> ... <|endoftext|>`, at most
    /// `context_length` long; a longer prompt is cut and its last id replaced
    /// by `<|endoftext|>`, as `clip.tokenize(..., truncate=True)` does.
    pub fn tokenize(&self, text: &str, context_length: usize) -> Tokens {
        let mut ids = Vec::with_capacity(context_length);
        ids.push(START_OF_TEXT);
        ids.extend(self.encode(text));
        ids.push(END_OF_TEXT);
        if ids.len() > context_length {
            ids.truncate(context_length.max(1));
            if let Some(last) = ids.last_mut() {
                *last = END_OF_TEXT;
            }
        }
        Tokens { ids }
    }

    /// Byte-level BPE of one pre-tokenized word, appending its ids.
    fn bpe_word(&self, bytes: &[u8], out: &mut Vec<u32>) {
        let Some((&last, rest)) = bytes.split_last() else {
            return;
        };
        let mut word: Vec<u32> = rest.iter().map(|&b| self.byte_ids[b as usize]).collect();
        word.push(self.byte_ids[last as usize] + 256);
        // Repeatedly merge the lowest-ranked adjacent pair, every
        // non-overlapping occurrence left to right, as the reference does.
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|w| self.ranks.get(&(w[0], w[1])).map(|&r| (r, w[0], w[1])))
                .min();
            let Some((rank, first, second)) = best else {
                break;
            };
            let merged = FIRST_MERGED_ID + rank;
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
        }
        out.extend(word);
    }
}

/// The reference's reversible byte -> printable character map, in vocabulary
/// order: printable Latin-1 bytes map to themselves, the rest to U+0100...
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .map(|(b, c)| (b as u8, char::from_u32(c).unwrap_or('?')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<u32> {
        ClipTokenizer::shared().tokenize(text, CONTEXT_LENGTH).ids
    }

    // Expected ids printed by open_clip 3.3.0's `tokenize` (OpenAI's
    // SimpleTokenizer) for the same strings; see tests/fixtures/README.md.
    #[test]
    fn matches_reference_ids_for_known_prompts() {
        assert_eq!(
            ids("a photo of a cat."),
            vec![49406, 320, 1125, 539, 320, 2368, 269, 49407]
        );
        assert_eq!(ids(""), vec![49406, 49407]);
    }

    #[test]
    fn truncation_keeps_the_end_token() {
        let long = "cat ".repeat(200);
        let t = ids(&long);
        assert_eq!(t.len(), CONTEXT_LENGTH);
        assert_eq!(t[0], START_OF_TEXT);
        assert_eq!(t[CONTEXT_LENGTH - 1], END_OF_TEXT);
        assert_eq!(t[CONTEXT_LENGTH - 2], t[1]);
    }

    #[test]
    fn pools_at_first_end_token() {
        let t = ClipTokenizer::shared().tokenize("a <end_of_text> b", CONTEXT_LENGTH);
        assert_eq!(t.ids[2], END_OF_TEXT);
        assert_eq!(t.pool_position(), 2);
        let plain = ClipTokenizer::shared().tokenize("a b", CONTEXT_LENGTH);
        assert_eq!(plain.pool_position(), plain.ids.len() - 1);
    }

    #[test]
    fn vocabulary_has_every_merge() {
        let tokenizer = ClipTokenizer::shared();
        assert_eq!(tokenizer.ranks.len(), MERGE_COUNT);
        assert_eq!(tokenizer.vocab_size, VOCAB_SIZE);
    }
}
