//! The benchmark's JSON document: produced by the same code as `cargo xtask bench` (here
//! with the test build of the s390x kernel, the quick sizes and one boot), it has every
//! field of the schema and a positive time for every phase. No timing is asserted.

use anyhow::Result;
use qemu::Arch;

#[test]
fn bench_document_has_the_schema_and_positive_phase_times() -> Result<()> {
    if !tests::selected(Arch::S390x) {
        eprintln!("skipped: s390x not in HOTMEM_ARCHES");
        return Ok(());
    }
    let plan = qemu::bench::Plan::new(Arch::S390x, true, 1);
    let doc = qemu::bench::collect(tests::image(Arch::S390x)?, &plan)?;
    qemu::bench::validate(&doc)?;
    let sizes = doc["sizes"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(sizes >= 3, "quick sizes 128M..1G expected, got {sizes}");
    Ok(())
}
