//! What a soak does, drawn from a seed: the [`Rng`], each arch's sizes ([`Geometry`]) and
//! one [`CyclePlan`] per cycle.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Arch;
use crate::profile::{GIB, MIB};

/// A xorshift64* generator seeded through splitmix64 (so every seed, 0 included, works).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(z.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = u128::from(hi - lo) + 1;
        lo + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }
}

/// A seed from the clock and the process id, for runs without `--seed`.
pub fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

/// The sizes a soak may pick on one arch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The kernel's memory block (one section): pc-dimm sizes are multiples of it.
    pub memory_block: u64,
    /// The smallest virtio-mem step: the device block, at least the engine's 2 MiB.
    pub granule: u64,
    /// The largest virtio-mem size a cycle asks for.
    pub vmem_max: u64,
    /// The largest pc-dimm; 0 where the arch has no pc-dimm (s390x).
    pub dimm_max: u64,
    /// DIMMs added together in one cycle, at most.
    pub max_dimms: u64,
}

/// The largest pc-dimm of a `--large` soak (three of them at most, plus virtio-mem).
pub const LARGE_DIMM: u64 = 64 * GIB;
/// The virtio-mem device of a `--large` soak.
pub const LARGE_VMEM: u64 = 64 * GIB;

impl Geometry {
    /// `arch`'s sizes, with the virtio-mem device's block and region size (from QEMU);
    /// `large`: pc-dimms up to [`LARGE_DIMM`].
    pub fn new(arch: Arch, granule: u64, vmem_region: u64, large: bool) -> Geometry {
        let memory_block = memory_block(arch);
        let (dimm_max, max_dimms) = match arch {
            Arch::S390x => (0, 0),
            Arch::X86_64 | Arch::Aarch64 if large => (LARGE_DIMM, 3),
            // Four slots in the hotplug profile; three leave one free for `qmp add-dimm`.
            Arch::X86_64 | Arch::Aarch64 => (GIB, 3),
        };
        Geometry {
            memory_block,
            granule: granule.max(2 * MIB),
            vmem_max: vmem_region,
            dimm_max,
            max_dimms,
        }
    }
}

/// The kernel's memory-block (section) size on `arch`.
pub fn memory_block(arch: Arch) -> u64 {
    match arch {
        Arch::S390x => 256 * MIB,
        Arch::X86_64 | Arch::Aarch64 => 128 * MIB,
    }
}

/// What one cycle does: add the DIMMs and grow virtio-mem (together), optionally grow it
/// further and shrink it to a prefix of its units, then remove everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CyclePlan {
    /// pc-dimm sizes, added back to back and removed back to back.
    pub dimms: Vec<u64>,
    /// virtio-mem requested sizes, strictly growing (empty: virtio-mem rests).
    pub vmem_grow: Vec<u64>,
    /// Shrink first to the size of the oldest `pick % units` units (0: straight to 0).
    pub vmem_partial: Option<u64>,
}

impl CyclePlan {
    /// Picks one cycle: pc-dimm, virtio-mem, or (one in ten) both at once.
    pub fn random(rng: &mut Rng, geo: &Geometry) -> CyclePlan {
        let (dimm, vmem) = match (geo.dimm_max, rng.range(0, 19)) {
            (0, _) => (false, true),
            (_, 0..=8) => (true, false),
            (_, 9..=17) => (false, true),
            _ => (true, true),
        };
        let mut plan = CyclePlan::default();
        if dimm {
            let blocks = geo.dimm_max / geo.memory_block;
            for _ in 0..rng.range(1, geo.max_dimms) {
                plan.dimms.push(geo.memory_block * rng.range(1, blocks));
            }
        }
        if vmem {
            let mut size = 0;
            while let Some(next) = vmem_size(rng, geo, size) {
                plan.vmem_grow.push(next);
                size = next;
                if plan.vmem_grow.len() == 2 || !rng.percent(30) {
                    break;
                }
            }
            if rng.percent(50) {
                plan.vmem_partial = Some(rng.next_u64());
            }
        }
        plan
    }

    /// `dimm 384M+128M`, `virtio-mem 0->650M->1G`, ... (for the progress line).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.dimms.is_empty() {
            let sizes: Vec<String> = self.dimms.iter().map(|&s| size_text(s)).collect();
            parts.push(format!("dimm {}", sizes.join("+")));
        }
        if !self.vmem_grow.is_empty() {
            let sizes: Vec<String> = self.vmem_grow.iter().map(|&s| size_text(s)).collect();
            parts.push(format!("virtio-mem 0->{}", sizes.join("->")));
        }
        parts.join(" + ")
    }
}

/// A virtio-mem size above `above` and at most `geo.vmem_max`: half the time whole memory
/// blocks (memmap inside them), else any number of granules (memmap from RAM for the
/// part off the block grid).
fn vmem_size(rng: &mut Rng, geo: &Geometry, above: u64) -> Option<u64> {
    if above >= geo.vmem_max {
        return None;
    }
    let mb = geo.memory_block;
    if rng.percent(50) && above / mb < geo.vmem_max / mb {
        return Some(mb * rng.range(above / mb + 1, geo.vmem_max / mb));
    }
    let g = geo.granule;
    Some(g * rng.range(above / g + 1, geo.vmem_max / g))
}

/// `128M`, `1G`, `650M`, `6M`.
pub fn size_text(bytes: u64) -> String {
    if bytes != 0 && bytes.is_multiple_of(GIB) {
        format!("{}G", bytes / GIB)
    } else {
        format!("{}M", bytes / MIB)
    }
}
