//! Preprocessed pixels identical to the reference (open_clip's eval
//! transform: torchvision `Resize(n, BICUBIC)` on a PIL image, `CenterCrop`,
//! `convert("RGB")`, `ToTensor`, `Normalize`) on PNG images of several modes
//! and shapes (`tests/fixtures/preprocess/`, written by
//! `tests/fixtures/preprocess_reference.py`).

use base64::Engine;
use datafusion_clip::model::Preprocessor;

#[derive(serde::Deserialize)]
struct Case {
    file: String,
    size: usize,
    rgb_base64: String,
    first_normalised: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

#[test]
fn resized_pixels_equal_pil_bicubic_for_every_mode_and_shape() {
    let fixture: Fixture = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    assert!(fixture.cases.len() >= 18);
    let mut failures = Vec::new();
    for case in &fixture.cases {
        let bytes = std::fs::read(fixture_dir().join(&case.file)).unwrap();
        let expected = base64::engine::general_purpose::STANDARD
            .decode(&case.rgb_base64)
            .unwrap();
        let ours = Preprocessor::new(case.size).resized_rgb(&bytes).unwrap();
        assert_eq!(ours.len(), expected.len(), "{} at {}", case.file, case.size);
        let worst = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        if worst != 0 {
            let differing = ours.iter().zip(&expected).filter(|(a, b)| a != b).count();
            failures.push(format!(
                "{} at {}: {differing} values differ, by up to {worst}",
                case.file, case.size
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normalisation_matches_torchvision_in_f32() {
    let fixture: Fixture = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    for case in &fixture.cases {
        let bytes = std::fs::read(fixture_dir().join(&case.file)).unwrap();
        let ours = Preprocessor::new(case.size).preprocess(&bytes).unwrap();
        for (a, b) in ours.iter().zip(&case.first_normalised) {
            assert!((a - b).abs() <= 1e-6, "{}: {a} vs {b}", case.file);
        }
    }
}
