//! Fuzz seeds for the binary targets are kept as text and assembled here, so what is
//! committed is a readable description of each input, not a blob.
//!
//! One field per line, little-endian: `u8`, `u16`, `u32` or `u64` followed by a number
//! (decimal or `0x` hex), `hex` followed by raw bytes in hex (GUIDs, opaque bodies), or
//! `ascii` followed by a double-quoted string (ACPI signatures and ids). `#` starts a
//! comment; blank lines are ignored.

use anyhow::{Context, Result, bail};

/// The bytes a `.seed` text describes.
pub fn assemble(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split_once('#').map_or(raw, |(code, _)| code).trim();
        if line.is_empty() {
            continue;
        }
        field(line, &mut out).with_context(|| format!("line {}: {raw:?}", i + 1))?;
    }
    Ok(out)
}

/// Appends one field's bytes.
fn field(line: &str, out: &mut Vec<u8>) -> Result<()> {
    let (kind, value) = line
        .split_once(char::is_whitespace)
        .context("a field needs a kind and a value")?;
    let value = value.trim();
    let width = match kind {
        "u8" => 1,
        "u16" => 2,
        "u32" => 4,
        "u64" => 8,
        "hex" => {
            if value.len() % 2 != 0 {
                bail!("odd number of hex digits");
            }
            for pair in value.as_bytes().chunks(2) {
                out.push(u8::from_str_radix(std::str::from_utf8(pair)?, 16)?);
            }
            return Ok(());
        }
        "ascii" => {
            let text = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .context("ascii takes a double-quoted string")?;
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        other => bail!("unknown field kind {other:?} (u8, u16, u32, u64, hex, ascii)"),
    };
    let number = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16)?,
        None => value.parse()?,
    };
    if width < 8 && number >> (8 * width) != 0 {
        bail!("{number:#x} does not fit in {kind}");
    }
    out.extend_from_slice(&number.to_le_bytes()[..width]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_little_endian_and_comments_are_skipped() {
        let text = "# header\nu8 2\nu16 0x1234  # a comment\n\nu32 7\nu64 0x1\n\
                    hex 79d3f066\nascii \"BX \"\n";
        let bytes = assemble(text).unwrap();
        assert_eq!(
            bytes,
            [
                2, 0x34, 0x12, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x79, 0xd3, 0xf0, 0x66, b'B',
                b'X', b' '
            ]
        );
    }

    #[test]
    fn bad_fields_name_their_line() {
        for bad in ["u8 256", "u16", "i32 1", "hex abc", "ascii BX", "u32 zz"] {
            let e = assemble(&format!("u8 1\n{bad}\n")).unwrap_err();
            assert!(format!("{e:#}").contains("line 2"), "{bad}: {e:#}");
        }
    }

    #[test]
    fn committed_seeds_assemble() {
        let root = qemu::cargo::workspace_root().join("fuzz/seeds");
        let mut n = 0;
        for target in std::fs::read_dir(root).unwrap() {
            for seed in std::fs::read_dir(target.unwrap().path()).unwrap() {
                let path = seed.unwrap().path();
                if path.extension().is_some_and(|e| e == "seed") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let bytes = assemble(&text).unwrap_or_else(|e| panic!("{path:?}: {e:#}"));
                    assert!(!bytes.is_empty(), "{path:?}");
                    n += 1;
                }
            }
        }
        assert!(n >= 10, "only {n} seeds");
    }
}
