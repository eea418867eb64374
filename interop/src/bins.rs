//! The programs the cross-process tests run: the `peerswarm` binary and
//! the js-libp2p node's Node.js dependencies.
//!
//! Cargo exposes `CARGO_BIN_EXE_*` only to tests of the crate that owns the
//! binary, and a dev-dependency's binaries are not built. So the first test
//! to need the binary runs `cargo build -p peerswarm-cli --bin peerswarm`
//! once per test process, with the profile and target directory the test
//! binary was built with (read off its own path,
//! `<target>/<profile>/deps/<test>`). When the binary is up to date that is
//! a no-op of about a second, and it never runs a stale binary. Set
//! `PEERSWARM_BIN=/path/to/peerswarm` to skip the build and use that file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `peerswarm` binary, built (or checked up to date) once per process.
pub fn peerswarm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PEERSWARM_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        // <target>/<profile dir>/deps/<this test>
        let profile_dir =
            exe.parent().and_then(Path::parent).expect("the test binary sits in <profile>/deps");
        let target_dir = profile_dir.parent().expect("the profile dir sits in the target dir");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => panic!("unexpected test binary path {}", exe.display()),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace =
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("interop/ sits in the workspace");
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "peerswarm-cli", "--bin", "peerswarm", "--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace)
            .status()
            .expect("run cargo build for the peerswarm binary");
        assert!(status.success(), "cargo build -p peerswarm-cli failed: {status}");
        let bin = profile_dir.join(format!("peerswarm{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "cargo built no {}", bin.display());
        bin
    })
}

/// The js-libp2p node's folder (`interop/js`), with its npm dependencies
/// installed: if `node_modules` lacks them, `npm ci` runs once per test
/// process (from the lock file, through the npm registry). Panics, naming
/// what is missing, if Node.js or npm is not there or the install fails.
pub fn js_node_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
        if !dir.join("node_modules/libp2p/package.json").is_file() {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .unwrap_or_else(|e| {
                    panic!("the js-libp2p interop tests need Node.js 20+ and npm (running npm: {e})")
                });
            assert!(status.success(), "npm ci in {} failed: {status}", dir.display());
        }
        dir
    })
}
