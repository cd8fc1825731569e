//! s390x in QEMU (TCG): device regions carved from RAM with `memmap=` — the legacy-pmem
//! region's altmap, populate and verification, and the 2017 s390 altmap gap reproduced
//! under `mm.semantics=rfc-2017` beside `linux`.

use std::time::Duration;

use anyhow::{Result, ensure};
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Memory, Outcome, Profile};
use tests::{boot_to_prompt, fields, line, number, shell};

const ARCH: Arch = Arch::S390x;
/// Overall limit of one machine.
const MACHINE_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Legacy pmem on s390x: `memmap=SIZE!START` carves RAM; the region gets the nvdimm pfn
/// layout's altmap; its memmap is populated through the 4 KiB PTE path (TCG has no EDAT-1)
/// with every leaf from the altmap, and verified through DAT and LRAG. Bad ranges are
/// refused with one line each and the good one still comes up.
#[test]
fn memmap_pmem_region_is_carved_populated_from_its_altmap_and_verified() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    const PAGE: u64 = 4096;
    let (start, size) = (GIB, 512 * MIB);
    let memory = Memory::ram(2 * GIB).with_maxmem(4 * GIB);
    let append = "memmap=512M!1G memmap=2M!1800M memmap=64M!1100M memmap=3M!300M";
    let profile = Profile::new(ARCH).with_memory(memory);
    let mut m = boot_to_prompt(&profile, append, MACHINE_TIMEOUT)?;
    let console = m.console();

    let add = fields(line(&console, "region: add id=1 ")?);
    ensure!(
        number(&add, "start")? == start && number(&add, "size")? == size,
        "{console}"
    );
    ensure!(add.get("kind") == Some(&"pmem"), "{console}");
    for (text, reason) in [
        ("2M!1800M", "too-small"),
        ("64M!1100M", "overlap"),
        ("3M!300M", "unaligned"),
    ] {
        let reject = console
            .lines()
            .find(|l| l.starts_with("region: reject") && l.contains(&format!("text={text} ")))
            .ok_or_else(|| anyhow::anyhow!("no refusal for {text}:\n{console}"))?;
        ensure!(fields(reject).get("reason") == Some(&reason), "{reject}");
    }

    // Linux's nd_pfn_init / __nvdimm_setup_pfn, computed here independently.
    let npfns = (size - 8192) / PAGE;
    let dataoff = (start + 8192 + 64 * npfns).next_multiple_of(2 * MIB) - start;
    let (reserve, offset) = (2, dataoff / PAGE);
    let memmap_pages = size / PAGE * 64 / PAGE;
    let altmap = shell(&mut m, "altmap 1")?;
    let a = fields(line(&altmap, "altmap: ")?);
    ensure!(number(&a, "base_pfn")? == start / PAGE, "{altmap}");
    ensure!(
        number(&a, "end_pfn")? == (start + size) / PAGE - 1,
        "{altmap}"
    );
    ensure!(number(&a, "reserve")? == reserve, "{altmap}");
    ensure!(number(&a, "free")? == offset - reserve, "{altmap}");
    ensure!(number(&a, "offset")? == offset, "{altmap}");
    ensure!(
        number(&a, "alloc")? == memmap_pages,
        "4 KiB leaves, one per memmap page:\n{altmap}"
    );
    ensure!(
        number(&a, "align")? == 0,
        "4 KiB requests never pad:\n{altmap}"
    );

    let verify = fields(line(&console, "verify: id=1 ")?);
    ensure!(verify.get("result") == Some(&"pass"), "{console}");
    ensure!(
        number(&verify, "pages")? == size / PAGE - offset,
        "data pages:\n{console}"
    );
    ensure!(
        number(&verify, "leaves.altmap")? == memmap_pages,
        "{console}"
    );
    ensure!(number(&verify, "leaves.other")? == 0, "{console}");

    // The struct page of the first data frame, walked in software and by LRAG.
    let page_va = 0x400_0000_0000u64 + 64 * (start / PAGE + offset);
    let walk = shell(&mut m, &format!("walk {page_va:#x}"))?;
    let result = fields(line(&walk, "walk.result ")?);
    ensure!(
        result.get("match") == Some(&"1"),
        "software walk and LRAG differ:\n{walk}"
    );
    let pa = number(&result, "pa")?;
    let storage = start + reserve * PAGE..start + offset * PAGE;
    ensure!(
        storage.contains(&pa),
        "struct page at {pa:#x} is not in the altmap storage:\n{walk}"
    );
    let mem = shell(&mut m, "mem")?;
    ensure!(
        number(&fields(line(&mem, "mem.total ")?), "reserved")? == size,
        "{mem}"
    );
    m.send_line("poweroff")?;
    let outcome = m.wait_exit(EXIT_TIMEOUT);
    qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)
}

/// The 2017 s390 altmap gap, reproduced (docs/mm.md): the same `memmap=512M!1G` region
/// booted with `mm.semantics=rfc-2017` and with `linux`, traced. TCG has no EDAT-1, so
/// every leaf is a 4 KiB PTE leaf. Under `rfc-2017` (the RFC's PTE path,
/// `vmemmap_alloc_block`) every one comes from RAM: `altmap.alloc=0`, the region record
/// counts the 2048 RAM pages, verification says the leaves are not in the altmap and
/// why. Under `linux` every one comes from the altmap and verification passes.
#[test]
fn rfc_2017_takes_every_pte_leaf_from_ram_and_linux_from_the_altmap() -> Result<()> {
    if tests::skipped(ARCH) {
        return Ok(());
    }
    const PAGE: u64 = 4096;
    let (start, size) = (GIB, 512 * MIB);
    let memmap_pages = size / PAGE * 64 / PAGE;
    let window =
        0x400_0000_0000u64 + 64 * (start / PAGE)..0x400_0000_0000 + 64 * ((start + size) / PAGE);
    for (semantics, from_altmap) in [("rfc-2017", false), ("linux", true)] {
        let memory = Memory::ram(2 * GIB).with_maxmem(4 * GIB);
        let profile = Profile::new(ARCH).with_memory(memory);
        let append = format!("mm.semantics={semantics} vmemmap.trace=on memmap=512M!1G");
        let mut m = boot_to_prompt(&profile, &append, MACHINE_TIMEOUT)?;
        let console = m.console();
        let populate = fields(line(&console, "region: populate id=1 ")?);
        ensure!(populate.get("semantics") == Some(&semantics), "{console}");
        let (alloc, ram_pages) = if from_altmap {
            (memmap_pages, 0)
        } else {
            (0, memmap_pages)
        };
        ensure!(number(&populate, "altmap.alloc")? == alloc, "{console}");
        ensure!(
            number(&populate, "memmap.ram_pages")? == ram_pages,
            "{console}"
        );
        ensure!(number(&populate, "leaves.ram")? == ram_pages, "{console}");

        let trace = tests::trace::region_populate_trace(&console, "1")?;
        ensure!(trace.leaves.len() as u64 == memmap_pages, "{console}");
        let source = if from_altmap { "altmap" } else { "ram" };
        for leaf in &trace.leaves {
            ensure!(leaf.get("name") == Some(&"page"), "a PTE leaf: {leaf:?}");
            ensure!(number(leaf, "bytes")? == PAGE, "{leaf:?}");
            ensure!(leaf.get("source") == Some(&source), "{semantics}: {leaf:?}");
            ensure!(window.contains(&number(leaf, "va")?), "{leaf:?}");
        }
        ensure!(trace.tables.iter().all(|t| t.get("source") == Some(&"ram")));
        ensure!(
            trace.summaries.len() == 2,
            "one call per section:\n{console}"
        );

        let verify = fields(line(&console, "verify: id=1 ")?);
        let gap = console.lines().find(|l| l.starts_with("verify.gap id=1 "));
        if from_altmap {
            ensure!(verify.get("result") == Some(&"pass"), "{console}");
            ensure!(gap.is_none(), "{console}");
        } else {
            ensure!(
                number(&verify, "leaves.other")? == memmap_pages,
                "{console}"
            );
            ensure!(number(&verify, "leaves.altmap")? == 0, "{console}");
            let gap = fields(gap.ok_or_else(|| anyhow::anyhow!("no verify.gap:\n{console}"))?);
            ensure!(
                number(&gap, "leaves.not_in_altmap")? == memmap_pages,
                "{gap:?}"
            );
            ensure!(
                number(&gap, "leaves.ram.by_semantics")? == memmap_pages,
                "{gap:?}"
            );
            ensure!(gap.get("why") == Some(&"ram-by-semantics"), "{gap:?}");
        }
        let text = shell(&mut m, "altmap 1")?;
        let altmap = fields(line(&text, "altmap: ")?);
        ensure!(number(&altmap, "alloc")? == alloc, "{text}");
        let mode = shell(&mut m, "semantics")?;
        ensure!(
            line(&mode, "mm.semantics ")?.contains(&format!("mode={semantics} ")),
            "{mode}"
        );
        m.send_line("poweroff")?;
        let outcome = m.wait_exit(EXIT_TIMEOUT);
        qemu::machine::ensure_outcome(&m, outcome, Outcome::Pass)?;
    }
    Ok(())
}
