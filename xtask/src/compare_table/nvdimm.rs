//! One NVDIMM as each side handled it: our kernel's region, altmap and memmap records,
//! and Linux's namespace, pfn device and memory figures from sysfs.

use super::values::*;
use super::*;

/// One NVDIMM as our kernel handled it.
pub(super) struct OurNvdimm {
    pub(super) state: Value,
    pub(super) size: u64,
    pub(super) data_start: u64,
    pub(super) data_size: u64,
    pub(super) end_trunc: u64,
    pub(super) memmap_pages: u64,
}

pub(super) fn our_nvdimm(ours: &OurSide, dev: &MemoryDevice) -> OurNvdimm {
    let mut nv = OurNvdimm {
        state: missing(),
        size: dev.size,
        data_start: 0,
        data_size: 0,
        end_trunc: 0,
        memmap_pages: 0,
    };
    let start = format!("range={:#x}-", dev.addr);
    if let Some(line) = ours
        .console
        .lines()
        .find(|l| l.starts_with("region: reject ") && l.contains(&start))
    {
        nv.state = with_detail("refused", fields(line).get("reason").unwrap_or(&"?"));
        return nv;
    }
    let Some(add) = lines_with(&ours.console, "region: add ")
        .find(|f| f.get("source") == Some(&"nfit") && num(f, "start") == Some(dev.addr))
    else {
        return nv;
    };
    let id = add.get("id").copied().unwrap_or_default();
    nv.size = num(&add, "size").unwrap_or(0);
    nv.end_trunc = num(&add, "trunc").unwrap_or(0);
    let id_field = |f: &HashMap<&str, &str>| f.get("id") == Some(&id);
    if let Some(p) = lines_with(&ours.console, "region: populate ").find(id_field)
        && let Some(errno) = p.get("errno")
    {
        nv.state = with_detail("refused", &format!("populate errno={errno}"));
        return nv;
    }
    let verify = lines_with(&ours.console, "verify: ").find(id_field);
    let offset = lines_with(&ours.altmaps, "altmap: ")
        .find(id_field)
        .and_then(|a| num(&a, "offset"));
    if let (Some(v), Some(offset)) = (verify, offset) {
        let dataoff = offset * 4096;
        nv.data_start = dev.addr + dataoff;
        nv.data_size = nv.size - dataoff - nv.end_trunc;
        nv.memmap_pages = num(&v, "memmap.pages").unwrap_or(0);
        nv.state = match v.get("result") {
            Some(&"pass") => text("enabled"),
            other => with_detail("verify-failed", other.unwrap_or(&"?")),
        };
    }
    nv
}

/// One NVDIMM as Linux handled it: the region at its address, its fsdax outcome, pfn.
pub(super) struct LinuxNvdimm {
    pub(super) state: Value,
    pub(super) ns_size: u64,
    pub(super) data_start: u64,
    pub(super) data_size: u64,
    pub(super) end_trunc: u64,
}

pub(super) fn linux_nvdimm(linux: &LinuxSide, dev: &MemoryDevice) -> LinuxNvdimm {
    let mut nv = LinuxNvdimm {
        state: missing(),
        ns_size: 0,
        data_start: 0,
        data_size: 0,
        end_trunc: 0,
    };
    let dump = &linux.after_nvdimms;
    let Some(region) = dump
        .of("linux.nd.region")
        .find(|r| r.num("resource") == Some(dev.addr))
    else {
        return nv;
    };
    let name = region.get("name").unwrap_or_default();
    let Some(event) = linux
        .boot
        .events("fsdax")
        .find(|e| e.get("region") == Some(name))
    else {
        return nv;
    };
    if event.get("state") != Some("enabled") {
        let detail = format!(
            "{} at {}",
            event.get("error").unwrap_or("?"),
            event.get("step").unwrap_or("?")
        );
        nv.state = with_detail("refused", &detail);
        return nv;
    }
    nv.state = text("enabled");
    let ns = event.get("namespace").unwrap_or_default();
    let pfn = event.get("pfn").unwrap_or_default();
    let find = |kind: &'static str, name: &str| -> Option<Record> {
        dump.of(kind).find(|r| r.get("name") == Some(name)).cloned()
    };
    if let (Some(ns), Some(pfn)) = (find("linux.nd.namespace", ns), find("linux.nd.pfn", pfn)) {
        let ns_start = ns.num("resource").unwrap_or(0);
        nv.ns_size = ns.num("size").unwrap_or(0);
        nv.data_start = pfn.num("resource").unwrap_or(0);
        nv.data_size = pfn.num("size").unwrap_or(0);
        nv.end_trunc = (ns_start + nv.ns_size).saturating_sub(nv.data_start + nv.data_size);
    }
    nv
}
