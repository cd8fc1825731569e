//! Command lines built by [`super::command`] for each arch, console mode and boot path.

use super::*;
use crate::cmdline::render;

fn s390x_image() -> BootImage {
    BootImage {
        arch: Arch::S390x,
        kernel: PathBuf::from("/k/kernel"),
        esp: None,
        loader: None,
    }
}

#[test]
fn memory_arg_uses_largest_units() {
    let m = Memory::ram(512 * MIB).with_maxmem(2 * GIB);
    assert_eq!(m.arg(), "512M,maxmem=2G");
    assert_eq!(Memory::ram(1500 * MIB).arg(), "1500M");
    let m = Memory::ram(GIB).with_slots(4).with_maxmem(8 * GIB);
    assert_eq!(m.arg(), "1G,slots=4,maxmem=8G");
    assert_eq!(size_arg(3 * KIB), "3K");
    assert_eq!(size_arg(1000), "1000");
}

#[test]
fn s390x_piped_command_matches_the_reference() {
    let mut opts = RunOptions::new(s390x_image());
    opts.append = Some("console=sclp hello=world".into());
    let cmd = command(&Profile::new(Arch::S390x), &opts).unwrap();
    let line = render(&cmd);
    assert!(line.ends_with(
        "-machine s390-ccw-virtio -accel tcg -m 512M,maxmem=2G -nodefaults -no-reboot \
         -nographic -chardev stdio,id=con0 -device sclpconsole,chardev=con0 \
         -kernel /k/kernel -append 'console=sclp hello=world'"
    ));
}

#[test]
fn interactive_console_muxes_the_monitor_and_adds_qmp() {
    let mut opts = RunOptions::new(s390x_image());
    opts.console = ConsoleMode::Interactive;
    opts.qmp = Some(PathBuf::from("/t/qmp.sock"));
    opts.gdb = true;
    let profile = Profile::new(Arch::S390x).with_device("virtio-mem-ccw,id=vm0,memdev=m0");
    let line = render(&command(&profile, &opts).unwrap());
    assert!(line.contains(
        "-chardev stdio,id=con0,mux=on,signal=off -device sclpconsole,chardev=con0 \
         -mon chardev=con0,mode=readline"
    ));
    assert!(line.contains("-qmp unix:/t/qmp.sock,server=on,wait=off -s -S"));
    assert!(line.ends_with("-device virtio-mem-ccw,id=vm0,memdev=m0"));
}

#[test]
fn kvm_uses_the_host_cpu() {
    let image = BootImage {
        arch: Arch::X86_64,
        kernel: PathBuf::from("/k/kernel"),
        esp: Some(PathBuf::from("/esp")),
        loader: None,
    };
    let mut opts = RunOptions::new(image);
    opts.accel = Accel::Kvm;
    let Ok(cmd) = command(&Profile::new(Arch::X86_64), &opts) else {
        return; // no OVMF on this host: covered by doctor
    };
    let line = render(&cmd);
    assert!(line.contains("-accel kvm -cpu host"));
    assert!(line.contains("-display none"));
    assert!(line.contains("isa-debug-exit"));
    assert!(line.contains("fat:rw:/esp"));
}

#[test]
fn direct_x86_64_boot_takes_the_elf_with_kernel_and_append() {
    let image = BootImage {
        arch: Arch::X86_64,
        kernel: PathBuf::from("/k/kernel"),
        esp: None,
        loader: None,
    };
    let mut opts = RunOptions::new(image);
    opts.append = Some("loglevel=info".into());
    let profile = Profile::new(Arch::X86_64).with_boot(BootPath::Direct);
    let line = render(&command(&profile, &opts).unwrap());
    assert!(
        line.contains("-kernel /k/kernel -append loglevel=info"),
        "{line}"
    );
    assert!(!line.contains("pflash"), "no firmware: {line}");
    let limine = Profile::new(Arch::S390x).with_boot(BootPath::Limine);
    let err = command(&limine, &RunOptions::new(s390x_image())).unwrap_err();
    assert!(err.to_string().contains("Limine does not exist"), "{err}");
}

#[test]
fn image_and_profile_must_agree() {
    let opts = RunOptions::new(s390x_image());
    assert!(command(&Profile::new(Arch::X86_64), &opts).is_err());
}
