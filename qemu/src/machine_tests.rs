//! Tests of the launcher: fake QEMUs (shell scripts) stand in for the machine.

use super::*;

#[test]
fn the_sentinel_decides_not_the_qemu_exit_code() {
    assert_eq!(
        Outcome::from_console("x\n@@EXIT status=0\n", Some(1)),
        Outcome::Pass
    );
    assert_eq!(
        Outcome::from_console("@@EXIT status=3\n", Some(0)),
        Outcome::Fail(3)
    );
    assert_eq!(
        Outcome::from_console("boot: ready\n", Some(0)),
        Outcome::NoSentinel(Some(0))
    );
    assert_eq!(Outcome::from_console("", None), Outcome::NoSentinel(None));
    assert!(!Outcome::NoSentinel(Some(0)).is_pass());
}

/// A shell script stands in for QEMU and a kernel: prompt, echo a command, exit.
fn fake(script: &str, timeout: Duration) -> Machine {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    Machine::spawn_command(cmd, timeout, false, None).unwrap()
}

const SHELL: &str = r#"printf 'boot: ready\r\n\033[1mhotmem> \033[0m'
    while read -r cmd; do
      case "$cmd" in
        exit*) echo "@@EXIT status=${cmd#exit }"; exit 0 ;;
        *) printf 'you said %s\nhotmem> ' "$cmd" ;;
      esac
    done"#;

#[test]
fn expect_send_and_decode_the_exit_line() {
    let mut m = fake(SHELL, Duration::from_secs(10));
    let boot = m.expect("hotmem> ", Duration::from_secs(5)).unwrap();
    assert_eq!(boot, "boot: ready\nhotmem> ");
    let out = m
        .run_command("mem", "hotmem> ", Duration::from_secs(5))
        .unwrap();
    assert_eq!(out, "you said mem\n");
    m.send_line("exit 3").unwrap();
    assert_eq!(m.wait_exit(Duration::from_secs(5)), Outcome::Fail(3));
    assert_eq!(m.exit_code(), Some(0));
    assert!(m.console().ends_with("@@EXIT status=3\n"));
}

#[test]
fn exit_without_sentinel_and_early_end_are_failures() {
    let mut m = fake("echo boot: ready; exit 0", Duration::from_secs(10));
    let err = m.expect("hotmem> ", Duration::from_secs(5)).unwrap_err();
    assert!(
        err.to_string().contains("before \"hotmem> \" appeared"),
        "{err}"
    );
    assert_eq!(
        m.wait_exit(Duration::from_secs(5)),
        Outcome::NoSentinel(Some(0))
    );
}

#[test]
fn timeouts_kill_the_machine() {
    let mut m = fake("echo boot: ready; exec sleep 30", Duration::from_secs(10));
    let err = m.expect("never", Duration::from_millis(200)).unwrap_err();
    assert!(err.to_string().contains("within"), "{err}");
    assert!(err.to_string().contains("boot: ready"), "{err}");
    assert_eq!(m.wait_exit(Duration::from_millis(200)), Outcome::Timeout);
    let mut m = fake("exec sleep 30", Duration::from_millis(300));
    assert_eq!(m.wait_exit(Duration::from_secs(20)), Outcome::Timeout);
}

#[test]
fn last_lines_keeps_the_tail() {
    assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    assert_eq!(last_lines("a", 5), "a");
}

#[test]
fn temp_qmp_paths_are_unique_and_short() {
    let a = temp_qmp_path("t");
    let b = temp_qmp_path("t");
    assert_ne!(a, b);
    assert!(
        a.as_os_str().len() < 108,
        "Unix socket paths are limited to 107 bytes"
    );
}

#[test]
fn a_kvm_failure_before_the_guest_runs_hands_the_run_to_the_fallback() {
    let broken = fake(
        "echo 'KVM internal error. Suberror: 1' >&2; echo 'emulation failure' >&2; exec sleep 30",
        Duration::from_secs(20),
    );
    let mut reason = String::new();
    let mut m = broken
        .unless_kvm_fails(Duration::from_secs(10), |why| {
            reason = why.to_string();
            Ok(fake(SHELL, Duration::from_secs(20)))
        })
        .unwrap();
    assert_eq!(reason, "KVM internal error. Suberror: 1");
    m.expect("hotmem> ", Duration::from_secs(5)).unwrap();
    m.send_line("exit 0").unwrap();
    assert_eq!(m.wait_exit(Duration::from_secs(5)), Outcome::Pass);
}

#[test]
fn a_working_kvm_keeps_its_machine_and_a_silent_one_is_replaced() {
    let working = fake(SHELL, Duration::from_secs(20));
    let mut m = working
        .unless_kvm_fails(Duration::from_secs(10), |why| panic!("fell back: {why}"))
        .unwrap();
    let boot = m.expect("hotmem> ", Duration::from_secs(5)).unwrap();
    assert!(boot.starts_with("boot: ready"), "{boot}");
    let stuck = fake("exec sleep 30", Duration::from_secs(20));
    let mut reason = String::new();
    let _ = stuck.unless_kvm_fails(Duration::from_millis(300), |why| {
        reason = why.to_string();
        Ok(fake("echo tcg", Duration::from_secs(5)))
    });
    assert_eq!(reason, "no output from the loader or kernel within 0.3 s");
}
