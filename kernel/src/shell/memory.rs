//! `hotplug`, `verify`, `alloc N` and `free`: the hot-added ranges and their sources, the
//! full check of their memmap on demand, and a way to make memory busy (so a hot-remove
//! can be refused) and idle again.

use alloc::vec::Vec;

use crate::hotplug::engine::MemmapFrom;
use crate::mm::addr::Pfn;
use crate::{Arch, Kernel, console::Console, kprintln};

use super::inspect::parse_number;

/// Most pages one `alloc` takes (keeps the record list bounded).
const MAX_ALLOC: u64 = 1 << 16;

/// `hotplug`: every hot-added range with its source, blocks, altmap and state, then the
/// event sources.
pub fn hotplug<A: Arch>(kernel: &Kernel<A>) {
    for hot in kernel.hotplug.ranges() {
        let (alloc, align) = hot.altmap_totals();
        let memmap = if hot.memmap == MemmapFrom::Altmap {
            "altmap"
        } else {
            "ram"
        };
        let offline: u64 = hot
            .blocks
            .iter()
            .map(|b| crate::hotplug::parts::pages(&b.offline))
            .sum();
        let verified = match hot.verified {
            None => "pending",
            Some(true) => "pass",
            Some(false) => "fail",
        };
        kprintln!(
            "hotplug.range range={:#x}-{:#x} blocks={} memmap={memmap} altmap.alloc={alloc} altmap.align={align} online.pages={} offline.pages={offline} state=online verify={verified} {}",
            hot.range.start,
            hot.range.end,
            hot.blocks.len(),
            hot.online_pages(),
            hot.via
        );
    }
    kprintln!(
        "hotplug.summary ranges={} sources={} memmap_on_memory={:?} block.bytes={:#x}",
        kernel.hotplug.ranges().len(),
        kernel.sources.len(),
        kernel.hotplug.mode(),
        kernel.hotplug.block().bytes
    );
    for source in &kernel.sources {
        let _ = source.describe(&mut Console);
    }
}

/// `verify [ID|ADDR]`: the full check through the MMU, now, of every live device region
/// and hot-added range, of device region ID, or of the hot-added range starting at ADDR
/// (a `0x` number); one `verify:` record each.
pub fn verify<A: Arch>(kernel: &mut Kernel<A>, arg: Option<&str>) {
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: verify: memory manager is down");
        return;
    };
    let wanted = match arg.map(|t| (t.starts_with("0x"), parse_number(t))) {
        None => None,
        Some((hex, Some(n))) => Some((hex, n)),
        Some((_, None)) => {
            kprintln!(
                "error: verify: usage: verify [ID|ADDR] (region id, or 0x start of a hot range)"
            );
            return;
        }
    };
    let mut checked = 0;
    for device in &mut kernel.devices {
        if wanted.is_none() || wanted == Some((false, u64::from(device.memory.region_id))) {
            crate::devices::verify_one::<A>(mm, device);
            checked += 1;
        }
    }
    // By index, without a copy of the list (verification changes no range).
    for index in 0..kernel.hotplug.ranges().len() {
        let range = kernel.hotplug.ranges()[index].range.clone();
        if wanted.is_none() || wanted == Some((true, range.start)) {
            crate::hotplug::dispatch::verify_range::<A>(mm, &mut kernel.hotplug, &range);
            checked += 1;
        }
    }
    if checked == 0 {
        match arg {
            Some(text) => kprintln!("error: verify: no live region or hot range {text}"),
            None => kprintln!("verify: nothing live to check"),
        }
    }
}

/// `alloc N [PFN]`: takes N order-0 pages from the buddy allocator and keeps them;
/// with PFN, exactly the frames PFN..PFN+N (each must be online and free).
pub fn alloc<A: Arch>(kernel: &mut Kernel<A>, args: &[&str]) {
    let count = args
        .first()
        .and_then(|t| parse_number(t))
        .filter(|&n| (1..=MAX_ALLOC).contains(&n));
    let at = args.get(1).map(|t| parse_number(t));
    let (Some(count), None | Some(Some(_))) = (count, at) else {
        kprintln!("error: alloc: usage: alloc N [PFN] (N in 1..={MAX_ALLOC})");
        return;
    };
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: alloc: memory manager is down");
        return;
    };
    // Room for the record first: a refused heap allocation takes no page.
    let room = kernel.allocated.try_reserve(count as usize);
    let mut got: Vec<Pfn> = Vec::new();
    if room
        .and_then(|()| got.try_reserve_exact(count as usize))
        .is_err()
    {
        kprintln!("error: alloc: no heap room to record {count} pages (reason=mm errno=-12)");
        return;
    }
    for i in 0..count {
        let result = match at {
            Some(Some(first)) => {
                let (buddy, memmap) = mm.buddy_for(Pfn(first + i));
                buddy.claim(memmap, Pfn(first + i)).map(|()| Pfn(first + i))
            }
            _ => {
                let (buddy, memmap) = mm.buddy_and_memmap();
                buddy.alloc(memmap, 0)
            }
        };
        match result {
            Ok(pfn) => got.push(pfn),
            Err(e) => {
                kprintln!("error: alloc: stopped after {} pages: {e:?}", got.len());
                break;
            }
        }
    }
    if let (Some(first), Some(last)) = (got.first(), got.last()) {
        kprintln!(
            "alloc: pages={} first_pfn={:#x} last_pfn={:#x} free={}",
            got.len(),
            first.0,
            last.0,
            mm.free_pages()
        );
    }
    kernel.allocated.extend(got);
}

/// `free`: gives back every page `alloc` took.
pub fn free<A: Arch>(kernel: &mut Kernel<A>) {
    let Some(mm) = kernel.mm.as_mut() else {
        kprintln!("error: free: memory manager is down");
        return;
    };
    let pages = kernel.allocated.len();
    for pfn in kernel.allocated.drain(..) {
        let (buddy, memmap) = mm.buddy_for(pfn);
        if let Err(e) = buddy.free(memmap, pfn, 0) {
            kprintln!("error: free: pfn {:#x}: {e:?}", pfn.0);
        }
    }
    kprintln!("free: pages={pages} free={}", mm.free_pages());
}

/// `probe START SIZE` / `unprobe START SIZE`: hot-add or hot-remove RAM that `mem=` hid,
/// through the same engine as every hotplug source (Linux's memory probe interface).
pub fn probe<A: Arch>(kernel: &mut Kernel<A>, args: &[&str], add: bool) {
    let name = if add { "probe" } else { "unprobe" };
    let parsed = match args {
        [start, size] => parse_number(start).zip(parse_number(size)),
        _ => None,
    };
    let Some((start, size)) = parsed else {
        kprintln!("error: {name}: usage: {name} START SIZE (hex with 0x, or decimal bytes)");
        return;
    };
    let range = start..start.saturating_add(size);
    if add
        && !kernel
            .hidden
            .iter()
            .any(|h| h.start <= range.start && range.end <= h.end)
    {
        kprintln!(
            "error: probe: {:#x}-{:#x} is not RAM hidden by mem= (nothing to hot-add there)",
            range.start,
            range.end
        );
        return;
    }
    let via = crate::hotplug::event::Via::Shell;
    let event = if add {
        crate::hotplug::event::Event::Add { range, via }
    } else {
        crate::hotplug::event::Event::Remove { range, via }
    };
    let _ = crate::hotplug::dispatch::handle(kernel, &event);
    crate::hotplug::dispatch::verify_added(kernel);
}
