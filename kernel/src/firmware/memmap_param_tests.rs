//! Host tests of the `memmap=` parser: sizes and suffixes, Linux's forms (supported or
//! named as unsupported), malformed items one error each, and property tests.

use super::*;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn one(item: &str) -> PmemRequest {
    parse_item(item).unwrap_or_else(|e| panic!("{e}"))
}

fn problem(item: &str) -> Problem {
    parse_item(item).expect_err(item).problem
}

#[test]
fn sizes_take_suffixes_in_either_case_and_hex() {
    assert_eq!(parse_size("512M", "size"), Ok((512 * MIB, "")));
    assert_eq!(parse_size("1g!", "size"), Ok((GIB, "!")));
    assert_eq!(parse_size("4k", "size"), Ok((4096, "")));
    assert_eq!(parse_size("2T", "size"), Ok((2 << 40, "")));
    assert_eq!(parse_size("0x40000000", "size"), Ok((GIB, "")));
    assert_eq!(parse_size("0X10M", "size"), Ok((16 * MIB, "")));
    assert_eq!(parse_size("0", "size"), Ok((0, "")));
    assert_eq!(parse_size("123", "size"), Ok((123, "")));
}

#[test]
fn legacy_pmem_items_parse_with_their_text() {
    let r = one("512M!1G");
    assert_eq!(
        (r.start, r.size, r.end()),
        (GIB, 512 * MIB, GIB + 512 * MIB)
    );
    assert_eq!(r.text, "512M!1G");
    let r = one("0x20000000!0x40000000");
    assert_eq!((r.start, r.size), (GIB, 512 * MIB));
    assert_eq!(one("0!4G").size, 0, "zero size is the region set's call");
}

#[test]
fn several_words_and_comma_lists_are_all_read_in_order() {
    let p = parse_cmdline("console=ttyS0 memmap=512M!1G,256M!2G loglevel=debug memmap=2M!3G");
    let got: Vec<_> = p.ranges.iter().map(|r| (r.start, r.size)).collect();
    assert_eq!(
        got,
        [(GIB, 512 * MIB), (2 * GIB, 256 * MIB), (3 * GIB, 2 * MIB)]
    );
    assert!(p.errors.is_empty());
    let p = parse_cmdline("memmap=\"64M!4G\"");
    assert_eq!(p.ranges[0].start, 4 * GIB);
}

#[test]
fn a_bad_item_does_not_hide_its_neighbours() {
    let p = parse_cmdline("memmap=512M!1G,junk,256M$2G,,128M!3G");
    assert_eq!(p.ranges.len(), 2);
    let codes: Vec<_> = p
        .errors
        .iter()
        .map(|e| (e.text.as_str(), e.problem.code()))
        .collect();
    assert_eq!(
        codes,
        [
            ("junk", "not-a-number"),
            ("256M$2G", "unsupported"),
            ("", "empty")
        ]
    );
}

#[test]
fn other_linux_forms_are_recognised_as_unsupported() {
    assert_eq!(problem("1G@4G"), Problem::Unsupported(Form::Ram));
    assert_eq!(problem("1G#4G"), Problem::Unsupported(Form::Acpi));
    assert_eq!(problem("1G$4G"), Problem::Unsupported(Form::Reserve));
    assert_eq!(problem("1G%4G-1+12"), Problem::Unsupported(Form::Convert));
    assert_eq!(problem("2G"), Problem::Unsupported(Form::Limit));
    assert_eq!(problem("exactmap"), Problem::Unsupported(Form::ExactMap));
}

#[test]
fn malformed_items_name_text_and_reason() {
    assert_eq!(problem(""), Problem::Empty);
    assert_eq!(problem("M!1G"), Problem::NotANumber { what: "size" });
    assert_eq!(problem("512M!"), Problem::NotANumber { what: "start" });
    assert_eq!(problem("512M!0x"), Problem::NotANumber { what: "start" });
    assert_eq!(problem("512M!1GB"), Problem::Trailing("B".into()));
    assert_eq!(problem("512Q!1G"), Problem::Trailing("Q!1G".into()));
    assert_eq!(problem("010M!1G"), Problem::LeadingZero { what: "size" });
    assert_eq!(problem("16E!0"), Problem::Overflow { what: "size" });
    assert_eq!(
        problem("99999999999999999999!0"),
        Problem::Overflow { what: "size" }
    );
    assert_eq!(problem("8E!8E"), Problem::Wraps);
    let e = parse_item("512M!1GB").unwrap_err();
    assert_eq!(
        e.to_string(),
        "memmap=512M!1GB: unexpected text \"B\" after the start"
    );
    let e = parse_item("1G$4G").unwrap_err();
    assert_eq!(
        e.to_string(),
        "memmap=1G$4G: unsupported form SIZE$START (reserve) (only SIZE!START, legacy pmem, is supported)"
    );
    assert_eq!(
        e.record().to_string(),
        "region: ignore source=memmap text=1G$4G reason=unsupported form=$"
    );
    assert_eq!(
        parse_item("010M!1G").unwrap_err().record().to_string(),
        "region: ignore source=memmap text=010M!1G reason=leading-zero"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(s in "[0-9a-fxA-FX!@#$%,KMGTPEkmgtpe ]{0,40}") {
        let p = parse_cmdline(&alloc::format!("memmap={s}"));
        for r in &p.ranges {
            prop_assert!(r.start.checked_add(r.size).is_some());
        }
    }

    #[test]
    fn any_unicode_never_panics(s in "\\PC{0,32}") {
        let _ = parse_cmdline(&s);
        let _ = parse_item(&s);
    }

    #[test]
    fn written_ranges_read_back(start_mib in 0u64..1 << 20, size_mib in 0u64..1 << 16, hex: bool) {
        let text = if hex {
            alloc::format!("{:#x}!{:#x}", size_mib * MIB, start_mib * MIB)
        } else {
            alloc::format!("{size_mib}M!{start_mib}M")
        };
        let r = parse_item(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((r.start, r.size), (start_mib * MIB, size_mib * MIB));
    }
}
