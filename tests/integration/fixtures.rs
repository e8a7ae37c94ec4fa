//! The committed fixtures are exactly what the generator makes.

#[test]
fn committed_fixtures_match_the_generator() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    for (name, bytes) in warmline::synth::example_files() {
        let on_disk = std::fs::read(dir.join(name)).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "fixtures/demo/{name} is stale: run `cargo run --example make_fixtures`"
        );
    }
}
