//! Replays what fuzzing left through every target: the committed corpus
//! (`fuzz/corpus/TARGET/`, minimised by `cargo xtask fuzz`) and every input
//! that ever failed (`fuzz/regressions/TARGET/`, kept once fixed), so that
//! what was fixed stays fixed.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut inputs: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    inputs.sort();
    inputs
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut summary = Vec::new();
    for (name, target) in autoheal_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            corpus.len() >= 10,
            "fuzz/corpus/{name}: {} inputs; a target's corpus is what its fuzzing run left",
            corpus.len()
        );
        let regressions = inputs(&root.join("regressions").join(name));
        for input in corpus.iter().chain(&regressions) {
            let data = std::fs::read(input).unwrap();
            // A failure names the input, so that it can be run alone.
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} fails on {}", input.display());
        }
        summary.push(format!("{name}: {} + {}", corpus.len(), regressions.len()));
    }
    let _ = std::fs::remove_dir_all(autoheal_fuzz::scratch_dir());
    eprintln!("replayed (corpus + regressions) {}", summary.join(", "));
}

/// A target in `TARGETS` without a fuzzer binary (or the other way round)
/// would never be fuzzed, or never replayed.
#[test]
fn every_target_has_a_fuzzer_binary_and_the_other_way_round() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets");
    let mut binaries: Vec<String> = inputs(&dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    let mut targets: Vec<String> = autoheal_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    targets.sort();
    assert_eq!(binaries, targets);
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for name in &targets {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "{name} is not a [[bin]] of fuzz/Cargo.toml"
        );
    }
}
