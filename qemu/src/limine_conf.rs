//! The run's kernel command line in the ESP's `boot/limine.conf`. Our loader takes
//! `--append` from the fw_cfg file `opt/hotmem/cmdline`, but real Limine reads only its
//! config file, so before a UEFI boot the ESP's copy of the workspace's `boot/limine.conf`
//! gets the run's command line in its first entry (the shipped `cmdline:` when the run has
//! none). Both loaders then see the same line.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// `template` with the first entry's `cmdline:` (or `kernel_cmdline:`) set to `cmdline`;
/// `None` keeps the template's own. An entry without one gets it after its last option.
pub fn with_cmdline(template: &str, cmdline: Option<&str>) -> Result<String> {
    let Some(cmdline) = cmdline else {
        return Ok(template.to_string());
    };
    if cmdline.contains(['\n', '\r']) {
        bail!("the kernel command line must be one line: {cmdline:?}");
    }
    let lines: Vec<&str> = template.lines().collect();
    let Some(title) = lines.iter().position(|l| l.trim_start().starts_with('/')) else {
        bail!("limine.conf has no `/Entry`");
    };
    let end = lines[title + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('/'))
        .map_or(lines.len(), |i| title + 1 + i);
    let is_option = |l: &&str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let key_of = |l: &str| {
        l.split_once(':')
            .map(|(k, _)| k.trim().to_ascii_lowercase())
    };
    let existing = (title + 1..end).find(|&i| {
        matches!(
            key_of(lines[i]).as_deref(),
            Some("cmdline" | "kernel_cmdline")
        )
    });
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match existing {
        Some(i) => {
            let line = lines[i];
            let indent = &line[..line.len() - line.trim_start().len()];
            let key = line.split_once(':').map_or("cmdline", |(k, _)| k.trim());
            out[i] = format!("{indent}{key}: {cmdline}");
        }
        None => {
            let last = (title..end)
                .rev()
                .find(|&i| is_option(&lines[i]))
                .unwrap_or(title);
            let indent = match lines.get(last).filter(|_| last > title) {
                Some(l) => &l[..l.len() - l.trim_start().len()],
                None => "    ",
            };
            out.insert(last + 1, format!("{indent}cmdline: {cmdline}"));
        }
    }
    Ok(out.join("\n") + "\n")
}

/// Before launching `opts`: a UEFI boot's ESP gets the run's command line in its
/// `boot/limine.conf` (nothing to do for a direct kernel boot).
pub fn prepare(opts: &crate::RunOptions) -> Result<()> {
    match &opts.image.esp {
        Some(esp) => write_for_run(esp, opts.append.as_deref()),
        None => Ok(()),
    }
}

/// Writes the ESP's `boot/limine.conf` for a run with `cmdline` (see the module text),
/// from the workspace's `boot/limine.conf`; the file is left alone when it already says so.
pub fn write_for_run(esp: &Path, cmdline: Option<&str>) -> Result<()> {
    let template_path = crate::cargo::workspace_root().join("boot/limine.conf");
    let template = fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    let text = with_cmdline(&template, cmdline)?;
    let target = esp.join("boot/limine.conf");
    if fs::read_to_string(&target).is_ok_and(|t| t == text) {
        return Ok(());
    }
    fs::write(&target, text).with_context(|| format!("writing {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../boot/limine.conf");

    #[test]
    fn the_shipped_entry_gets_the_run_cmdline() {
        let out = with_cmdline(SHIPPED, Some("loglevel=debug mem=1G")).unwrap();
        assert!(
            out.contains("\n    cmdline: loglevel=debug mem=1G\n"),
            "{out}"
        );
        assert!(!out.contains("loglevel=info"), "{out}");
        assert!(out.contains("kernel_path: boot():/boot/kernel"));
        assert_eq!(out.lines().count(), SHIPPED.lines().count());
        assert_eq!(with_cmdline(SHIPPED, None).unwrap(), SHIPPED);
    }

    #[test]
    fn only_the_first_entry_changes_and_a_missing_cmdline_is_added() {
        let two = "timeout: 0\n/a\n  protocol: limine\n  kernel_path: boot():/a\n\
                   /b\n  protocol: limine\n  kernel_path: boot():/b\n  cmdline: keep\n";
        let out = with_cmdline(two, Some("x=1")).unwrap();
        assert_eq!(
            out,
            "timeout: 0\n/a\n  protocol: limine\n  kernel_path: boot():/a\n  cmdline: x=1\n\
             /b\n  protocol: limine\n  kernel_path: boot():/b\n  cmdline: keep\n"
        );
        let aliased = "/a\nprotocol: limine\nKERNEL_CMDLINE: old\nkernel_path: boot():/k\n";
        assert_eq!(
            with_cmdline(aliased, Some("new")).unwrap(),
            "/a\nprotocol: limine\nKERNEL_CMDLINE: new\nkernel_path: boot():/k\n"
        );
        assert_eq!(
            with_cmdline("/a\n", Some("x")).unwrap(),
            "/a\n    cmdline: x\n"
        );
    }

    #[test]
    fn bad_input_is_one_clear_error() {
        let e = with_cmdline(SHIPPED, Some("a\nb")).unwrap_err().to_string();
        assert!(e.contains("must be one line"), "{e}");
        let e = with_cmdline("timeout: 0\n", Some("a"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `/Entry`"), "{e}");
    }

    #[test]
    fn writing_is_idempotent() {
        let dir = std::env::temp_dir().join(format!("hotmem-conf-{}", std::process::id()));
        fs::create_dir_all(dir.join("boot")).unwrap();
        write_for_run(&dir, Some("loglevel=debug")).unwrap();
        let text = fs::read_to_string(dir.join("boot/limine.conf")).unwrap();
        assert!(text.contains("cmdline: loglevel=debug"));
        write_for_run(&dir, None).unwrap();
        let text = fs::read_to_string(dir.join("boot/limine.conf")).unwrap();
        assert_eq!(text, SHIPPED);
        let _ = fs::remove_dir_all(&dir);
    }
}
