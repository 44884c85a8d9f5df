//! Token ids identical to the reference tokenizer's (open_clip's
//! `tokenize`, OpenAI's BPE) on every committed case:
//! `tests/fixtures/tokenizer_cases.json.gz`, written by
//! `tests/fixtures/make_reference.py`.

use std::io::Read;

use clip_model::ClipTokenizer;

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    generator: String,
    context_length: usize,
    cases: Vec<Case>,
}

fn fixture() -> Fixture {
    let path =
        std::path::Path::new(crate::support::repo()).join("tests/fixtures/tokenizer_cases.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn token_ids_match_the_reference_tokenizer_on_every_case() {
    let fixture = fixture();
    assert!(fixture.cases.len() >= 2000, "{} cases", fixture.cases.len());
    let tokenizer = ClipTokenizer::shared();
    let mut mismatches = Vec::new();
    for case in &fixture.cases {
        let ids = tokenizer.tokenize(&case.text, fixture.context_length).ids;
        if ids != case.ids {
            mismatches.push(format!(
                "{:?}\n  ours: {ids:?}\n  ref:  {:?}",
                case.text, case.ids
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from {}:\n{}",
        mismatches.len(),
        fixture.cases.len(),
        fixture.generator,
        mismatches.join("\n")
    );
}

#[test]
fn the_cases_cover_truncation_and_the_empty_string() {
    let fixture = fixture();
    let truncated = fixture
        .cases
        .iter()
        .filter(|c| c.ids.len() == fixture.context_length)
        .count();
    assert!(truncated >= 50, "only {truncated} cases reach 77 tokens");
    assert!(
        fixture
            .cases
            .iter()
            .any(|c| c.text.is_empty() && c.ids == [49406, 49407])
    );
    // Truncation keeps the end token.
    assert!(
        fixture
            .cases
            .iter()
            .filter(|c| c.ids.len() == fixture.context_length)
            .all(|c| c.ids[76] == 49407)
    );
}
