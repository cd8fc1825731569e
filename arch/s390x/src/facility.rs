//! The STFLE facility list: bit n counts from the most significant bit of doubleword
//! n / 64. Pure, host-tested.

/// Facility 8: enhanced DAT 1 (1 MiB segment frames).
pub const EDAT1: u32 = 8;
/// Facility 78: enhanced DAT 2 (2 GiB region-third frames).
pub const EDAT2: u32 = 78;
/// Facility 25: store clock fast.
pub const STCKF: u32 = 25;
/// Facility 3: IDTE.
pub const IDTE: u32 = 3;
/// Facility 130: instruction-execution protection (the IEP bit, 0x100, in page- and
/// segment-table entries, enabled by CR0 bit 43).
pub const IEP: u32 = 130;

/// The first 256 facility bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facilities {
    words: [u64; 4],
}

impl Facilities {
    /// Wraps the doublewords stored by STFLE.
    pub const fn new(words: [u64; 4]) -> Self {
        Self { words }
    }

    /// Whether facility `nr` is installed.
    pub const fn has(&self, nr: u32) -> bool {
        let word = (nr / 64) as usize;
        word < self.words.len() && (self.words[word] >> (63 - nr % 64)) & 1 == 1
    }

    /// The raw doublewords.
    pub const fn words(&self) -> [u64; 4] {
        self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The STFLE words QEMU 10.0's TCG default model stores (reference/s390x.md §3.2).
    const TCG: Facilities = Facilities::new([
        0xf940_f6d3_f4c4_5c64,
        0x059c_0000_0000_0000,
        0x7120_2800_0000_0000,
        0,
    ]);

    #[test]
    fn tcg_model_has_no_edat() {
        assert!(!TCG.has(EDAT1));
        assert!(!TCG.has(EDAT2));
    }

    #[test]
    fn tcg_model_bits_match_the_documented_list() {
        let set = [
            0, 1, 2, 3, 4, 7, 9, 16, 17, 18, 19, 21, 22, 24, 25, 27, 30, 31, 32, 33, 34, 35, 37,
            40, 41, 45, 49, 51, 52, 53, 57, 58, 61, 69, 71, 72, 75, 76, 77, 129, 130, 131, 135,
            138, 146, 148,
        ];
        for nr in 0..256 {
            assert_eq!(TCG.has(nr), set.contains(&nr), "facility {nr}");
        }
        assert!(TCG.has(STCKF) && TCG.has(IDTE) && TCG.has(IEP));
    }
}
