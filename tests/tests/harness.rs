//! The harness against a real QEMU, no kernel needed: s390x machines held at reset (`-S`).
//! The QMP client and hotplug helpers drive a virtio-mem-ccw device, and the console pipes
//! carry the HMP monitor muxed on them, as `cargo xtask run` wires it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use qemu::hotplug::{self, MemoryDevice};
use qemu::profile::{GIB, MIB};
use qemu::{Arch, Machine, Outcome, QmpError};
use serde_json::{Value, json};

#[test]
fn virtio_mem_ccw_hotplug_flows() -> Result<()> {
    if !tests::selected(Arch::S390x) {
        return Ok(());
    }
    let (ram, maxmem) = (512 * MIB, 2 * GIB);
    let socket = qemu::machine::temp_qmp_path("qmp-test");
    let mut cmd = Command::new(qemu::host::qemu_binary(Arch::S390x));
    cmd.args([
        "-machine",
        "s390-ccw-virtio",
        "-accel",
        "tcg",
        "-nodefaults",
        "-nographic",
    ]);
    cmd.args([
        "-S",
        "-no-reboot",
        "-m",
        &format!("{}M,maxmem={}G", ram / MIB, maxmem / GIB),
    ]);
    cmd.args(["-object", "memory-backend-ram,id=mem0,size=1G"]);
    cmd.args([
        "-device",
        "virtio-mem-ccw,id=vm0,memdev=mem0,requested-size=256M",
    ]);
    cmd.arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()));
    let mut m = Machine::spawn_command(cmd, Duration::from_secs(30), false, Some(socket))?;
    let mut qmp = m.qmp()?;

    let devices = hotplug::query_memory_devices(&mut qmp)?;
    let vm0 = find(&devices, "vm0")?;
    ensure!(
        vm0.addr == tests::align_up(ram, GIB),
        "vm0 at {:#x}",
        vm0.addr
    );
    ensure!(vm0.requested_size == Some(256 * MIB) && vm0.max_size == Some(GIB));

    // Hot-add a second device with nothing plugged, then remove it: CCW deletes at once.
    hotplug::add_ram_backend(&mut qmp, "mem1", 256 * MIB)?;
    hotplug::add_virtio_mem(&mut qmp, Arch::S390x, "vm1", "mem1", 0, None)?;
    ensure!(hotplug::query_memory_devices(&mut qmp)?.len() == 2);
    hotplug::delete_device(&mut qmp, "vm1", Duration::from_secs(10))?;
    ensure!(hotplug::query_memory_devices(&mut qmp)?.len() == 1);

    // QEMU's errors come back as QmpError::Command.
    let too_big = hotplug::add_ram_backend(&mut qmp, "mem2", 4 * GIB)
        .and_then(|()| hotplug::add_virtio_mem(&mut qmp, Arch::S390x, "vm2", "mem2", 0, None));
    let err = too_big.expect_err("4 GiB does not fit in maxmem");
    ensure!(
        matches!(err.downcast_ref(), Some(QmpError::Command { .. })),
        "{err:#}"
    );
    let args = json!({"path": "vm0", "property": "requested-size", "value": "512M"});
    let err = qmp
        .execute("qom-set", args)
        .expect_err("sizes must be integers");
    ensure!(err.to_string().contains("uint64"), "{err}");
    hotplug::set_requested_size(&mut qmp, "vm0", 512 * MIB)?;
    let vm0 = find(&hotplug::query_memory_devices(&mut qmp)?, "vm0")?.clone();
    ensure!(vm0.requested_size == Some(512 * MIB), "{vm0:?}");

    qmp.execute("quit", Value::Null)?;
    let outcome = m.wait_exit(Duration::from_secs(10));
    ensure!(outcome == Outcome::NoSentinel(Some(0)), "{outcome}");
    Ok(())
}

#[test]
fn monitor_muxed_on_the_console_pipe() -> Result<()> {
    if !tests::selected(Arch::S390x) {
        return Ok(());
    }
    let mut cmd = Command::new(qemu::host::qemu_binary(Arch::S390x));
    cmd.args([
        "-machine",
        "s390-ccw-virtio",
        "-accel",
        "tcg",
        "-nodefaults",
        "-nographic",
    ]);
    cmd.args([
        "-S",
        "-no-reboot",
        "-chardev",
        "stdio,id=con0,mux=on,signal=off",
    ]);
    cmd.args([
        "-device",
        "sclpconsole,chardev=con0",
        "-mon",
        "chardev=con0,mode=readline",
    ]);
    let mut m = Machine::spawn_command(cmd, Duration::from_secs(30), false, None)?;
    m.send_line("\x01c")?; // Ctrl-A c: the console has the focus; switch to the monitor
    m.expect("(qemu) ", Duration::from_secs(10))?;
    m.send_line("info status")?;
    m.expect("VM status: paused", Duration::from_secs(10))?;
    m.send_line("quit")?;
    let outcome = m.wait_exit(Duration::from_secs(10));
    ensure!(outcome == Outcome::NoSentinel(Some(0)), "{outcome}");
    Ok(())
}

#[test]
fn gdb_stub_answers_while_held_at_reset() -> Result<()> {
    if !tests::selected(Arch::S390x) {
        return Ok(());
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut cmd = Command::new(qemu::host::qemu_binary(Arch::S390x));
    cmd.args([
        "-machine",
        "s390-ccw-virtio",
        "-accel",
        "tcg",
        "-nodefaults",
        "-nographic",
    ]);
    cmd.args(["-S", "-no-reboot", "-gdb", &format!("tcp:127.0.0.1:{port}")]);
    let _m = Machine::spawn_command(cmd, Duration::from_secs(30), false, None)?;
    let mut stream = connect(port)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"$?#3f")?; // "why did you stop?"
    let mut reply = String::new();
    let mut chunk = [0u8; 64];
    while !reply.split_once('#').is_some_and(|(_, sum)| sum.len() >= 2) {
        let n = stream.read(&mut chunk)?;
        ensure!(n > 0, "gdb stub closed after {reply:?}");
        reply.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    ensure!(
        reply.starts_with("+$T") || reply.starts_with("+$S"),
        "gdb stub said {reply:?}"
    );
    Ok(())
}

/// Connects to QEMU's gdb stub, retrying while QEMU starts.
fn connect(port: u16) -> Result<TcpStream> {
    let mut last = None;
    for _ in 0..250 {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last.expect("tried at least once").into())
}

fn find<'a>(devices: &'a [MemoryDevice], id: &str) -> Result<&'a MemoryDevice> {
    devices
        .iter()
        .find(|d| d.id.as_deref() == Some(id))
        .ok_or_else(|| anyhow::anyhow!("no {id} in {devices:?}"))
}
