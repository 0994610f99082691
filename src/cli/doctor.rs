//! `imgbuild doctor`: can this machine run `run` steps, and what to fix if not.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Error;
use crate::exec::rootfs::mount_overlay;
use crate::exec::{Executor, OciRuntime};
use crate::ir::Platform;
use crate::printer::Printer;
use crate::store::Store;

/// Foreign platforms whose emulators are reported.
const PLATFORMS: [&str; 7] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/386",
];

/// Checks the runtime, overlayfs, emulators and store; fails when `run` steps cannot work.
pub fn run(store_dir: Option<&Path>, runtime: Option<&str>, printer: Printer) -> Result<(), Error> {
    let mut report = String::new();
    let mut ok = true;
    let root = store_dir.map_or_else(Store::default_root, Path::to_path_buf);
    let store = match Store::open(&root) {
        Ok(store) => {
            let _ = writeln!(report, "store      ok    {}", store.root().display());
            Some(store)
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(
                report,
                "store      FAIL  {}: {e}\n           fix:  pass a writable directory with `--store DIR`",
                root.display()
            );
            None
        }
    };
    let scratch = store
        .as_ref()
        .map_or_else(std::env::temp_dir, |s| s.temp_path("doctor"));
    match OciRuntime::detect(runtime, &scratch) {
        Ok(found) => {
            let _ = writeln!(report, "runtime    ok    {}", found.describe());
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(
                report,
                "runtime    FAIL  {e}\n           fix:  install runc (Debian: `apt-get install runc`) or pass `--runtime PATH`"
            );
        }
    }
    match check_overlay(&scratch) {
        Ok(()) => {
            let _ = writeln!(
                report,
                "overlayfs  ok    mounts with redirect_dir=off,metacopy=off"
            );
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(
                report,
                "overlayfs  FAIL  {e}\n           fix:  run as root on a kernel with overlayfs (`modprobe overlay`)"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let host = Platform::host();
    let _ = writeln!(report, "platform   ok    {host} (native)");
    for text in PLATFORMS {
        let platform = Platform::parse(text).expect("known platforms parse");
        if platform.architecture == host.architecture {
            continue;
        }
        match crate::exec::step::check_platform(&platform, &host) {
            Ok(()) => {
                let _ = writeln!(report, "emulator   ok    {platform}");
            }
            Err(e) => {
                let why = e.to_string();
                let _ = writeln!(report, "emulator   --    {platform}: {why}");
            }
        }
    }
    if report.contains("emulator   --") {
        let _ = writeln!(
            report,
            "           fix:  install Debian's `qemu-user-static` and `binfmt-support`, and mount binfmt_misc (`mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc`)"
        );
    }
    printer.result(&report).map_err(Error::Output)?;
    if ok { Ok(()) } else { Err(Error::DoctorFailed) }
}

/// Mounts a tiny overlay to prove it works.
fn check_overlay(scratch: &Path) -> Result<(), String> {
    let dir = scratch.join("overlay");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| dir.join(d));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let mount = mount_overlay(
        std::slice::from_ref(&lower),
        Some(crate::exec::rootfs::Upper {
            upper: &upper,
            work: &work,
        }),
        &merged,
    )
    .map_err(|e| format!("cannot mount an overlay: {e}"))?;
    std::fs::write(merged.join("probe"), "x")
        .map_err(|e| format!("cannot write through the overlay: {e}"))?;
    drop(mount);
    if upper.join("probe").exists() {
        Ok(())
    } else {
        Err("writes through the overlay did not reach its upperdir".into())
    }
}
