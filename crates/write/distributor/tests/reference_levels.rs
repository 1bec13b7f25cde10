//! Runs the level detector over every line of the reference dataset whose `detected_level`
#![allow(clippy::unwrap_used)]
//! real Loki reported (see `tests/data/detected_levels.json`: `[line, level]` pairs extracted
//! from the recorded query answers) and compares.

use skald_distributor::LevelDetector;

#[test]
fn detected_level_matches_real_loki() {
    let data = include_str!("data/detected_levels.json");
    let pairs: Vec<(String, String)> = serde_json::from_str(data).expect("valid test data");
    assert!(pairs.len() > 3000);
    let detector = LevelDetector::new(&[], 2);
    let mut mismatches = Vec::new();
    for (line, want) in &pairs {
        let got = detector.detect_from_line(line);
        if got != want {
            mismatches.push(format!("want {want}, got {got}: {line}"));
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
