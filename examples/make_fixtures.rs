//! Regenerates the bundled fixtures under `fixtures/demo/` from `warmline::synth`.
//!
//! `cargo run --example make_fixtures`

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in warmline::synth::example_files() {
        std::fs::write(dir.join(name), bytes)?;
        println!("wrote fixtures/demo/{name}");
    }
    Ok(())
}
