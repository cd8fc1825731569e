//! QEMU for the hotmem kernels, from the host side: per-arch machine profiles, a launcher
//! with timeouts and kill-on-drop, console capture with `expect`, the `@@EXIT status=N`
//! exit protocol, a small QMP client and the memory-hotplug flows built on it.
//!
//! Used by `xtask` (build, run, test, doctor, gdb) and by the integration tests in `tests/`.
//! Everything is std threads and blocking I/O; there is no async runtime.

pub mod accel;
pub mod arch;
pub mod bench;
pub mod cargo;
pub mod cmdline;
pub mod console;
pub mod esp;
pub mod host;
pub mod hotplug;
pub mod image;
pub mod kvm;
pub mod kvm_cache;
pub mod limine_conf;
pub mod linux;
pub mod machine;
pub mod profile;
pub mod qmp;
pub mod scale;
pub mod soak;
pub mod toolchain;

pub use accel::{Accel, AccelChoice};
pub use arch::Arch;
pub use cargo::{BootImage, build, build_with};
pub use machine::{Machine, Outcome};
pub use profile::{ConsoleMode, Memory, Profile, RunOptions};
pub use qmp::{Qmp, QmpError};
