//! The one image every engine test runs, made without a registry: a root
//! filesystem of `busybox-static` and its applets, with `/www` for
//! `busybox httpd` and a CGI script at `/cgi-bin/who` that answers
//! `hello <the caller's address>`.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path, process::Command};

/// Busybox applets the image links.
const APPLETS: &[&str] = &[
    "sh", "ip", "nc", "ping", "httpd", "cat", "sleep", "echo", "ls", "printf", "ifconfig", "true",
    "nslookup",
];

/// The CGI script: the caller's address.
const WHO: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"hello $REMOTE_ADDR\"\n";

/// Builds the root filesystem in `rootfs` and returns it as a tar stream
/// (what `docker import -` and `podman import -` read).
#[must_use]
pub fn busybox_tar(rootfs: &Path) -> Vec<u8> {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).expect("rootfs");
    fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox (busybox-static; cargo xtask setup installs it)");
    for applet in APPLETS {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("applet link");
        }
    }
    let cgi = rootfs.join("www/cgi-bin");
    fs::create_dir_all(&cgi).expect("www");
    fs::write(rootfs.join("www/index.html"), "hello\n").expect("index");
    fs::write(cgi.join("who"), WHO).expect("cgi");
    fs::set_permissions(cgi.join("who"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .output()
        .expect("tar");
    assert!(tar.status.success(), "tar of {}", rootfs.display());
    tar.stdout
}
