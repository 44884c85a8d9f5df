//! Token ids identical to the reference tokenizer's on every committed case
//! (`tests/fixtures/tokenizer_ids.json`, written by
//! `tests/fixtures/tokenizer_reference.py` with open_clip).

use datafusion_clip::model::ClipTokenizer;

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    context_length: usize,
    cases: Vec<Case>,
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("fixtures/tokenizer_ids.json")).expect("fixture parses");
    assert!(fixture.cases.len() >= 20);
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
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
