//! Finding one ACPI table's raw bytes by signature: RSDP → XSDT (or RSDT) → table, for
//! the tables the `acpi` crate does not model (NFIT) or that the region code parses
//! itself (SRAT). Physical memory is read through a caller-supplied mapping.

/// Reads `len` bytes at physical address `pa` (the HHDM, identity, ...); `None` if the
/// range cannot be read.
pub type ReadPhys<'a> = &'a dyn Fn(u64, usize) -> Option<&'static [u8]>;

/// Why no table came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindError {
    /// The RSDP signature or checksum is wrong.
    BadRsdp,
    /// The XSDT/RSDT header is unreadable or has the wrong signature.
    BadRoot,
    /// No table with that signature.
    NotFound,
    /// A table header claims a length the mapping cannot provide.
    BadLength,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The bytes of the first table whose signature is `signature` (e.g. `b"NFIT"`).
pub fn find(
    rsdp: u64,
    signature: &[u8; 4],
    read: ReadPhys<'_>,
) -> Result<&'static [u8], FindError> {
    let head = read(rsdp, 20).ok_or(FindError::BadRsdp)?;
    if &head[..8] != b"RSD PTR " || head.iter().fold(0u8, |a, &b| a.wrapping_add(b)) != 0 {
        return Err(FindError::BadRsdp);
    }
    let (root, entry_size) = if head[15] >= 2 {
        let full = read(rsdp, 36).ok_or(FindError::BadRsdp)?;
        (u64_at(full, 24), 8)
    } else {
        (u64::from(u32_at(head, 16)), 4)
    };
    let root_bytes = table(root, read).ok_or(FindError::BadRoot)?;
    let expected: &[u8; 4] = if entry_size == 8 { b"XSDT" } else { b"RSDT" };
    if &root_bytes[..4] != expected {
        return Err(FindError::BadRoot);
    }
    for entry in root_bytes[36..].chunks_exact(entry_size) {
        let pa = if entry_size == 8 {
            u64_at(entry, 0)
        } else {
            u64::from(u32_at(entry, 0))
        };
        let Some(header) = read(pa, 8) else { continue };
        if &header[..4] == signature {
            return table(pa, read).ok_or(FindError::BadLength);
        }
    }
    Err(FindError::NotFound)
}

/// A whole table: its header's length, read in one piece.
fn table(pa: u64, read: ReadPhys<'_>) -> Option<&'static [u8]> {
    let header = read(pa, 36)?;
    let len = u32_at(header, 4) as usize;
    (36..=16 << 20)
        .contains(&len)
        .then(|| read(pa, len))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_fix(bytes: &mut [u8], at: usize) {
        let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        bytes[at] = bytes[at].wrapping_sub(sum);
    }

    fn header(sig: &[u8; 4], len: usize) -> Vec<u8> {
        let mut t = vec![0u8; len];
        t[..4].copy_from_slice(sig);
        t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        t
    }

    /// RSDP at 0x1000, XSDT at 0x2000 listing a FACP at 0x3000 and an NFIT at 0x4000.
    fn machine() -> Vec<(u64, Vec<u8>)> {
        let mut rsdp = vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[24..32].copy_from_slice(&0x2000u64.to_le_bytes());
        checksum_fix(&mut rsdp[..20], 8);
        let mut xsdt = header(b"XSDT", 36 + 16);
        xsdt[36..44].copy_from_slice(&0x3000u64.to_le_bytes());
        xsdt[44..52].copy_from_slice(&0x4000u64.to_le_bytes());
        vec![
            (0x1000, rsdp),
            (0x2000, xsdt),
            (0x3000, header(b"FACP", 40)),
            (0x4000, header(b"NFIT", 80)),
        ]
    }

    fn reader(mem: Vec<(u64, Vec<u8>)>) -> impl Fn(u64, usize) -> Option<&'static [u8]> {
        let mem: &'static [(u64, Vec<u8>)] = Box::leak(mem.into_boxed_slice());
        move |pa, len| {
            let (base, bytes) = mem
                .iter()
                .find(|(b, t)| pa >= *b && pa < b + t.len() as u64)?;
            bytes.get((pa - base) as usize..(pa - base) as usize + len)
        }
    }

    #[test]
    fn finds_a_table_through_the_xsdt() {
        let read = reader(machine());
        let nfit = find(0x1000, b"NFIT", &read).expect("present");
        assert_eq!((&nfit[..4], nfit.len()), (&b"NFIT"[..], 80));
        assert_eq!(find(0x1000, b"SRAT", &read), Err(FindError::NotFound));
    }

    #[test]
    fn bad_rsdp_checksum_and_short_tables_are_errors() {
        let mut mem = machine();
        mem[0].1[9] ^= 1;
        assert_eq!(find(0x1000, b"NFIT", &reader(mem)), Err(FindError::BadRsdp));
        let mut mem = machine();
        mem[3].1[4..8].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(
            find(0x1000, b"NFIT", &reader(mem)),
            Err(FindError::BadLength)
        );
    }
}
