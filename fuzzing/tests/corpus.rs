//! Replays every committed fuzz input (`fuzz/corpus/TARGET/*`, crashes found included)
//! through its target on stable, so what the fuzzer once found stays fixed.

use std::path::Path;

#[test]
fn every_corpus_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in sg_fuzzing::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target has a corpus)", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} fails", path.display());
            count += 1;
        }
        assert!(count > 0, "{name}: the corpus is empty");
        eprintln!("{name}: {count} inputs replayed");
    }
}
