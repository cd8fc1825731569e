//! The KVM probe's verdict, cached per machine so that only the first run pays for it.
//!
//! One small text file per arch, `kvm-probe-<arch>.txt`, in `$HOTMEM_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/hotmem`, else `~/.cache/hotmem`. It holds the verdict and the key it was
//! found under; a different key means a different machine state and a new probe. The key
//! names what decides whether KVM can run the guest: the QEMU binary (path, size, mtime),
//! the firmware image (path, size, mtime), the host kernel release and the boot id (so a
//! reboot, a new QEMU or a new firmware probes again). Deleting the file also does.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::arch::Arch;

/// What the probe (or a failed run) found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Real guest code reached the known point under KVM.
    Usable,
    /// It did not; why (one line).
    Broken(String),
}

/// A cached verdict and when it was found (seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub verdict: Verdict,
    pub when: u64,
}

/// The cache directory (see the module text).
pub fn dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HOTMEM_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("hotmem")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/hotmem")))
}

/// The cache file of `arch`.
pub fn file(arch: Arch) -> Option<PathBuf> {
    dir().map(|d| d.join(format!("kvm-probe-{arch}.txt")))
}

/// The machine state a verdict holds for: QEMU and firmware identity, host kernel, boot.
pub fn key(qemu: &Path, firmware: Option<&Path>) -> String {
    let identity = |p: &Path| {
        let resolved = resolve_on_path(p);
        match fs::metadata(&resolved) {
            Ok(m) => {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                format!("{} size={} mtime={mtime}", resolved.display(), m.len())
            }
            Err(_) => format!("{} missing", resolved.display()),
        }
    };
    let read =
        |p: &str| fs::read_to_string(p).map_or_else(|_| "?".into(), |s| s.trim().to_string());
    format!(
        "qemu={} firmware={} host_kernel={} boot_id={}",
        identity(qemu),
        firmware.map_or_else(|| "none".to_string(), identity),
        read("/proc/sys/kernel/osrelease"),
        read("/proc/sys/kernel/random/boot_id"),
    )
}

/// The verdict stored for `arch` under `key`, if any.
pub fn load(arch: Arch, key: &str) -> Option<Cached> {
    parse(&fs::read_to_string(file(arch)?).ok()?, key)
}

/// Stores `verdict` for `arch` under `key` (best effort: a read-only home only costs a
/// probe per run).
pub fn store(arch: Arch, key: &str, verdict: &Verdict) {
    let Some(path) = file(arch) else {
        return;
    };
    let when = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = render(
        key,
        &Cached {
            verdict: verdict.clone(),
            when,
        },
    );
    if let Some(parent) = path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    if let Err(e) = fs::write(&path, text) {
        eprintln!(
            "accel: cannot cache the KVM verdict in {}: {e}",
            path.display()
        );
    }
}

/// The file text for `cached` under `key`.
pub fn render(key: &str, cached: &Cached) -> String {
    let (verdict, reason) = match &cached.verdict {
        Verdict::Usable => ("usable", ""),
        Verdict::Broken(why) => ("broken", why.as_str()),
    };
    let reason = reason.replace('\n', " ");
    format!(
        "# hotmem: KVM probe verdict (delete this file to probe again)\n\
         key={key}\nverdict={verdict}\nreason={reason}\nwhen={}\n",
        cached.when
    )
}

/// The cached verdict in `text` when it was stored under `key`.
pub fn parse(text: &str, key: &str) -> Option<Cached> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    };
    if field("key")? != key {
        return None;
    }
    let verdict = match field("verdict")? {
        "usable" => Verdict::Usable,
        "broken" => Verdict::Broken(field("reason").unwrap_or("").to_string()),
        _ => return None,
    };
    let when = field("when").and_then(|w| w.parse().ok()).unwrap_or(0);
    Some(Cached { verdict, when })
}

/// `name` as found on `PATH` when it is a bare command name.
fn resolve_on_path(p: &Path) -> PathBuf {
    if p.components().count() != 1 {
        return p.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(p))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_under_the_same_key_only() {
        let broken = Cached {
            verdict: Verdict::Broken("KVM internal error. Suberror: 1".into()),
            when: 1_764_000_000,
        };
        let text = render("k1", &broken);
        assert_eq!(parse(&text, "k1"), Some(broken));
        assert_eq!(parse(&text, "k2"), None, "another machine state");
        let usable = Cached {
            verdict: Verdict::Usable,
            when: 5,
        };
        assert_eq!(parse(&render("k", &usable), "k"), Some(usable));
        assert_eq!(parse("garbage", "k"), None);
        assert_eq!(parse("key=k\nverdict=maybe\n", "k"), None);
    }

    #[test]
    fn the_key_names_qemu_firmware_and_the_host_kernel() {
        let dir = std::env::temp_dir().join(format!("hotmem-kvmkey-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let qemu = dir.join("qemu");
        fs::write(&qemu, b"v1").unwrap();
        let a = key(&qemu, None);
        assert!(a.contains("size=2"), "{a}");
        assert!(a.contains("firmware=none"));
        assert!(a.contains("host_kernel="));
        assert!(a.contains("boot_id="));
        fs::write(&qemu, b"version 2").unwrap();
        assert_ne!(key(&qemu, None), a, "a new QEMU means a new probe");
        assert_ne!(key(&qemu, Some(&dir.join("fw"))), key(&qemu, None));
        let _ = fs::remove_dir_all(&dir);
    }
}
