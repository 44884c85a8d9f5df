//! The text clean-up CLIP applies before BPE.
//!
//! The reference computes `whitespace_clean(basic_clean(text)).lower()` with
//! `basic_clean = ftfy.fix_text` followed by `html.unescape` twice. We
//! reproduce the ftfy fixes that change ordinary prompts and class names
//! (HTML entities, terminal escapes, C1 controls as Windows-1252, Latin
//! ligatures, full-width characters, curly quotes, line breaks, control
//! characters, NFC). ftfy's mojibake repair (`fix_encoding` and its lossy
//! sequence heuristics) is not reproduced: it only changes text that is
//! itself wrongly decoded UTF-8.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// Clean `text` exactly as far as the reference does before splitting:
/// ftfy fixes, HTML unescaping, whitespace collapse, lower-casing.
pub fn clean_text(text: &str) -> String {
    let fixed = ftfy_fix_text(text);
    let unescaped = htmlize::unescape(htmlize::unescape(fixed.as_str()).as_ref()).into_owned();
    collapse_whitespace(&unescaped).to_lowercase()
}

/// `re.sub(r"\s+", " ", text).strip()`
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

static HTML_ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("entity pattern compiles")
});

static TERMINAL_ESCAPE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("ANSI pattern compiles")
});

/// The subset of `ftfy.fix_text` (default configuration) described in the
/// module comment. ftfy fixes the text line by line (segments ending after
/// each `\n`), each until it stops changing; HTML entities are unescaped
/// until the first line containing `<`, and not from that line on (ftfy
/// takes such text for markup and switches unescaping off for the rest).
fn ftfy_fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape = false;
        }
        let mut current = if unescape {
            unescape_semicolon_entities(segment)
        } else {
            segment.to_string()
        };
        for _ in 0..4 {
            let next = ftfy_fix_once(&current);
            if next == current {
                break;
            }
            current = next;
        }
        out.push_str(&current);
    }
    out
}

/// ftfy's own `unescape_html`: only `&name;` / `&#n;` forms, leaving an
/// unknown entity as written.
fn unescape_semicolon_entities(text: &str) -> String {
    HTML_ENTITY
        .replace_all(text, |caps: &regex::Captures| {
            let entity = &caps[0];
            let decoded = htmlize::unescape(entity);
            if decoded != entity {
                decoded.into_owned()
            } else {
                // ftfy also knows the upper-case spellings of entities.
                let lower = entity.to_lowercase();
                let decoded_lower = htmlize::unescape(lower.as_str());
                if decoded_lower != lower.as_str()
                    && entity[1..]
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == ';')
                {
                    decoded_lower.to_uppercase()
                } else {
                    entity.to_string()
                }
            }
        })
        .into_owned()
}

fn ftfy_fix_once(text: &str) -> String {
    let text: Cow<str> = TERMINAL_ESCAPE.replace_all(text, "");
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        let ch = c1_control_as_windows_1252(ch);
        if let Some(expanded) = latin_ligature(ch) {
            out.push_str(expanded);
            continue;
        }
        let ch = narrow_width(ch);
        let ch = match ch {
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            _ => ch,
        };
        if is_removed_control(ch) {
            continue;
        }
        out.push(ch);
    }
    // Line breaks: \r\n, \r, U+2028, U+2029 become \n.
    let out = out
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}'], "\n");
    out.nfc().collect()
}

/// ftfy's `fix_c1_controls`: a C1 control character is almost always a
/// Windows-1252 byte decoded as Latin-1.
fn c1_control_as_windows_1252(ch: char) -> char {
    const CP1252: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match ch {
        '\u{80}'..='\u{9f}' => CP1252[ch as usize - 0x80],
        _ => ch,
    }
}

fn latin_ligature(ch: char) -> Option<&'static str> {
    Some(match ch {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// ftfy's `fix_character_width`: full-width and half-width forms (and the
/// ideographic space) become their ordinary-width equivalents.
fn narrow_width(ch: char) -> char {
    if ch == '\u{3000}' {
        return ' ';
    }
    if !('\u{ff01}'..='\u{ffef}').contains(&ch) {
        return ch;
    }
    let mut normalized = std::iter::once(ch).nfkc();
    match (normalized.next(), normalized.next()) {
        (Some(single), None) => single,
        _ => ch,
    }
}

/// ftfy's `remove_control_chars`; tab, line feed, form feed and carriage
/// return stay.
fn is_removed_control(ch: char) -> bool {
    matches!(ch,
        '\u{0}'..='\u{8}'
        | '\u{b}'
        | '\u{e}'..='\u{1f}'
        | '\u{7f}'
        | '\u{206a}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffc}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e007f}')
}

#[cfg(test)]
mod tests {
    use super::clean_text;

    #[test]
    fn collapses_whitespace_and_lowercases() {
        assert_eq!(
            clean_text("  A\tPhoto \n of\u{3000}a CAT  "),
            "a photo of a cat"
        );
    }

    #[test]
    fn unescapes_html_entities() {
        assert_eq!(clean_text("Tom &amp; Jerry"), "tom & jerry");
        assert_eq!(clean_text("&amp;lt;b&amp;gt;"), "<b>");
    }

    #[test]
    fn applies_ftfy_character_fixes() {
        assert_eq!(clean_text("\u{201c}Ｆｕｌｌ\u{201d} ﬁsh"), "\"full\" fish");
        assert_eq!(clean_text("e\u{301}"), "é");
        assert_eq!(clean_text("\u{1b}[31mred\u{1b}[0m"), "red");
    }
}
