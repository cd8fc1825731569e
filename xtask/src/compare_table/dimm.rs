//! The rows of the scenario's pc-dimms: memory blocks, online state and the memmap's
//! place on each side.

use super::values::*;
use super::*;

pub(super) fn dimm_rows(t: &mut Table, scenario: &Scenario, linux: &LinuxSide, ours: &OurSide) {
    if scenario.dimms.is_empty() {
        return;
    }
    let ranges: Vec<HashMap<&str, &str>> = lines_with(&ours.hotplug, "hotplug.range ").collect();
    let our_block = lines_with(&ours.hotplug, "hotplug.summary ")
        .next()
        .and_then(|f| num(&f, "block.bytes"));
    t.push(
        "memory block size".into(),
        linux.end.block_size().map_or_else(missing, hex),
        our_block.map_or_else(missing, hex),
        None,
    );
    let on_memory = linux
        .end
        .of("linux.param")
        .next()
        .and_then(|r| r.get("memmap_on_memory"))
        .unwrap_or("?")
        .to_string();
    for (i, (ldev, odev)) in linux.dimms.iter().zip(&ours.dimms).enumerate() {
        let name = format!("dimm{i}");
        t.push(
            format!("{name} QEMU placement"),
            place(ldev),
            place(odev),
            None,
        );
        let lrange = ldev.addr..ldev.addr + ldev.size;
        let online = linux.end.block_bytes(&lrange, "online");
        let block = linux.end.block_size().unwrap_or(1).max(1);
        let aligned = ldev.addr.is_multiple_of(block) && ldev.size.is_multiple_of(block);
        let lstate = if online == ldev.size {
            text("online")
        } else if online == 0 && !aligned {
            with_detail(
                "refused",
                &format!("not {}-aligned", crate::compare::mib(block)),
            )
        } else {
            with_detail("partly-online", &format!("{online:#x}"))
        };
        let orange = (odev.addr, odev.addr + odev.size);
        let ours_range = ranges
            .iter()
            .find(|f| f.get("range").and_then(|r| range_field(r)) == Some(orange));
        let ostate = match ours_range {
            Some(f) if f.get("state") == Some(&"online") => text("online"),
            Some(f) => with_detail("not-online", f.get("state").unwrap_or(&"?")),
            None => match our_add_refusal(&ours.console, orange) {
                Some(f) if f.get("reason") == Some(&"misaligned") => {
                    let block = num(&f, "block").map_or_else(|| "?".into(), crate::compare::mib);
                    with_detail("refused", &format!("not {block}-aligned"))
                }
                Some(f) => with_detail("refused", f.get("reason").unwrap_or(&"?")),
                None => missing(),
            },
        };
        t.push(format!("{name} range online"), lstate, ostate, None);
        // A range refused on a side has no memmap there.
        let lplace = if online == 0 {
            missing()
        } else if matches!(on_memory.as_str(), "Y" | "force") {
            with_detail("altmap", &format!("memmap_on_memory={on_memory}"))
        } else {
            with_detail("ram", &format!("memmap_on_memory={on_memory}"))
        };
        let oplace = ours_range
            .and_then(|f| f.get("memmap").copied())
            .unwrap_or("-");
        t.push(
            format!("{name} memmap placement"),
            lplace,
            text(oplace),
            Some(MEMMAP_ON_MEMORY),
        );
    }
    let memmap_dimms: u64 = linux
        .end
        .vmstat("nr_memmap_pages")
        .zip(linux.after_nvdimms.vmstat("nr_memmap_pages"))
        .map_or(0, |(end, before)| end.saturating_sub(before));
    // Ours: the altmap pages of a self-hosted range, else its memmap in RAM.
    let our_dimm_memmap: u64 = ranges
        .iter()
        .filter_map(|f| match f.get("memmap") {
            Some(&"altmap") => num(f, "altmap.alloc"),
            _ => range_field(f.get("range")?).map(|(lo, hi)| (hi - lo) / 4096 * 64 / 4096),
        })
        .sum();
    if scenario.vmem.is_none() {
        t.push(
            "dimm memmap pages (nr_memmap_pages delta)".into(),
            text(&memmap_dimms.to_string()),
            text(&our_dimm_memmap.to_string()),
            None,
        );
    }
}

/// The fields of our `hotplug: refuse op=add` record for exactly `range`, if the kernel
/// refused to add it (a pc-dimm that is not whole memory blocks: `reason=misaligned
/// block=0x8000000`, as Linux's `check_hotplug_memory_range` refuses it).
fn our_add_refusal(console: &str, range: (u64, u64)) -> Option<HashMap<&str, &str>> {
    lines_with(console, "hotplug: refuse ").find(|f| {
        f.get("op") == Some(&"add") && f.get("range").and_then(|r| range_field(r)) == Some(range)
    })
}
