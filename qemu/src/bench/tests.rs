//! Host tests of the benchmark plumbing: parsing the kernel's records, the document's
//! schema check, the spreads.

use super::*;

const CONSOLE: &str = "bench.start arch=s390x clock=stckf\n\
    bench.result size=134217728 activate_ns=10 populate_ns=20 init_ns=30 verify_ns=40 memset_ns=5 memset_cold_ns=50 zero_ns=4 memmap_bytes=2097152 memmap_mib_s=1 roofline_permille=100 tables=1 leaves=512\n\
    bench.done\n";

#[test]
fn results_parse_to_numbers() {
    let r = parse_results(CONSOLE).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["populate_ns"], 20);
    assert!(parse_results("nothing").is_err());
}

#[test]
fn validate_wants_positive_phases() {
    let times =
        json!({"qemu_start_to_prompt_ms": spread(&[100.0]), "entry_to_prompt_ms": spread(&[5.0])});
    let mut doc = json!({"arch": "s390x", "date": "d", "qemu": "10", "accel": "tcg", "clock": "stckf",
        "boot": {"direct": times}, "sizes": parse_results(CONSOLE).unwrap()});
    validate(&doc).unwrap();
    doc["boot"]["grub"] = doc["boot"]["direct"].clone();
    assert!(validate(&doc).is_err(), "unknown boot path");
    doc["boot"].as_object_mut().unwrap().remove("grub");
    doc["boot"]["direct"]["entry_to_prompt_ms"]["median"] = json!(0.0);
    assert!(validate(&doc).is_err(), "zero boot time");
    doc["boot"]["direct"]["entry_to_prompt_ms"]["median"] = json!(5.0);
    doc["sizes"][0]["verify_ns"] = json!(0);
    assert!(validate(&doc).is_err());
}

#[test]
fn spread_of_even_and_odd_counts() {
    assert_eq!(spread(&[3.0, 1.0, 2.0])["median"], 2.0);
    assert_eq!(spread(&[4.0, 1.0])["median"], 2.5);
}
