//! Attaching the programs: `tc_from_container` on container veths,
//! `tc_from_uplink`/`tc_to_uplink` on uplinks (tcx links, resolved in the
//! calling thread's network namespace), and the socket programs on a
//! cgroup (`bpf_link`s).
//!
//! Every link is pinned at `links/<program>@<interface>` (or
//! `links/<program>` for the cgroup) when the datapath was opened with
//! pins, so it keeps the hook running while no agent does. An agent that
//! finds a pin for an attachment it wants swaps its own program into the
//! link (`BPF_LINK_UPDATE`, atomic: no packet meets an empty hook); a pin
//! whose device is gone, or that no longer names the same device, is
//! removed and the program attached anew.

use std::{
    fs::{self, File},
    io,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use aya::programs::{
    CgroupAttachMode, TcAttachType, XdpMode,
    links::{FdLink, LinkError},
};
use weir_common::stats::Hook;

use super::{
    Datapath, DatapathError, SOCK_PROGRAMS, classifier,
    pins::{pin_file_err, remove_pin},
    sock_program,
    sys::{self, LinkInfo},
    xdp_program,
};
use crate::error::Chain;

/// The pin name of `program`'s link on `interface` (dots, which bpffs
/// refuses in names, become `_`), or on the cgroup.
#[must_use]
pub fn link_name(program: &str, interface: Option<&str>) -> String {
    match interface {
        Some(i) => format!("{program}@{}", i.replace('.', "_")),
        None => program.to_owned(),
    }
}

/// Where an attachment goes: a device's tcx hook, or a cgroup.
enum Target<'a> {
    Tcx {
        interface: &'a str,
        ifindex: u32,
        direction: TcAttachType,
    },
    Cgroup {
        path: &'a Path,
        id: u64,
    },
    Xdp {
        interface: &'a str,
        ifindex: u32,
        mode: XdpMode,
    },
}

/// Where `xdp_from_uplink` runs (`weir agent --xdp`).
///
/// There is no generic (skb) mode: on the kernels weir is tested on
/// (6.18), a frame that generic XDP passes reaches tcx ingress without its
/// Ethernet header in view (the skb's MAC length is left unset), so
/// `tc_from_uplink` behind it could not parse anything. A device without
/// native XDP gets none; tc does the whole job there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpChoice {
    /// The driver's (native) XDP where the device has it, else none.
    #[default]
    Auto,
    /// Native only: refused on a device without it.
    Native,
    /// No XDP: tc does everything.
    Off,
}

impl std::str::FromStr for XdpChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "off" => Ok(Self::Off),
            "generic" => Err(
                "generic XDP is not offered: tc's programs behind it would not see the frame's \
                 Ethernet header on this kernel; use native or off"
                    .to_owned(),
            ),
            other => Err(format!(
                "invalid XDP mode `{other}`: expected auto, native or off"
            )),
        }
    }
}

impl Target<'_> {
    /// Whether an existing link `info` is attached where this target is.
    fn holds(&self, info: &LinkInfo) -> bool {
        match self {
            Target::Tcx { ifindex, .. } => {
                info.link_type == sys::LINK_TYPE_TCX && info.tcx_ifindex == *ifindex
            }
            Target::Cgroup { id, .. } => info.cgroup_id() == *id,
            Target::Xdp { ifindex, .. } => {
                info.link_type == sys::LINK_TYPE_XDP && info.tcx_ifindex == *ifindex
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Tcx { interface, .. } | Target::Xdp { interface, .. } => {
                (*interface).to_owned()
            }
            Target::Cgroup { path, .. } => format!("cgroup {}", path.display()),
        }
    }
}

impl Datapath {
    /// Attaches `tc_from_container` to tcx ingress of `interface` (the host
    /// side of a container veth), in the calling thread's network namespace.
    pub fn attach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        self.attach_tcx(
            Hook::FromContainer.program(),
            interface,
            TcAttachType::Ingress,
        )
    }

    /// Detaches `tc_from_container` from `interface` and removes its pin (a
    /// no-op when it is not attached; a link whose device is gone goes
    /// quietly).
    pub fn detach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        self.drop_link(&link_name(Hook::FromContainer.program(), Some(interface)))
    }

    /// Attaches `tc_from_bridge` to tcx ingress of `bridge` (an engine's):
    /// what comes up from a container not yet entered stops there.
    pub fn attach_bridge(&mut self, bridge: &str) -> Result<(), DatapathError> {
        self.attach_tcx(Hook::FromBridge.program(), bridge, TcAttachType::Ingress)
    }

    /// Detaches `tc_from_bridge` from `bridge` and removes its pin.
    pub fn detach_bridge(&mut self, bridge: &str) -> Result<(), DatapathError> {
        self.drop_link(&link_name(Hook::FromBridge.program(), Some(bridge)))
    }

    /// Detaches the uplink programs from `interface` (removing their pins;
    /// a link whose device is gone is only unpinned).
    pub fn detach_uplink(&mut self, interface: &str) -> Result<(), DatapathError> {
        for hook in [Hook::FromUplink, Hook::ToUplink, Hook::XdpFromUplink] {
            self.drop_link(&link_name(hook.program(), Some(interface)))?;
        }
        Ok(())
    }

    /// Attaches `tc_from_uplink` to tcx ingress and `tc_to_uplink` to tcx
    /// egress of `interface`, and `xdp_from_uplink` as `xdp` says (with
    /// `Off`, an XDP link an earlier agent left there is removed). Returns
    /// the XDP mode it runs in, if any.
    pub fn attach_uplink(
        &mut self,
        interface: &str,
        xdp: XdpChoice,
    ) -> Result<Option<&'static str>, DatapathError> {
        self.attach_tcx(Hook::FromUplink.program(), interface, TcAttachType::Ingress)?;
        self.attach_tcx(Hook::ToUplink.program(), interface, TcAttachType::Egress)?;
        let program = Hook::XdpFromUplink.program();
        let ifindex = ifindex(interface).ok_or_else(|| DatapathError::Link {
            name: link_name(program, Some(interface)),
            source: io::Error::new(io::ErrorKind::NotFound, format!("no interface {interface}")),
        })?;
        let target = |mode| Target::Xdp {
            interface,
            ifindex,
            mode,
        };
        match xdp {
            XdpChoice::Off => {
                self.drop_link(&link_name(program, Some(interface)))?;
                Ok(None)
            }
            XdpChoice::Native => self
                .attach(program, &target(XdpMode::Driver))
                .map(|()| Some("native")),
            XdpChoice::Auto => match self.attach(program, &target(XdpMode::Driver)) {
                Ok(()) => Ok(Some("native")),
                Err(e) => {
                    tracing::info!(
                        uplink = %interface,
                        "no native XDP on this device ({}): tc does the whole job",
                        Chain(&e)
                    );
                    self.drop_link(&link_name(program, Some(interface)))?;
                    Ok(None)
                }
            },
        }
    }

    /// Attaches the socket programs to the cgroup at `cgroup` (a cgroup v2
    /// directory; its root covers every process). Other agents' programs
    /// stay attached beside ours: each acts only in its own namespace.
    pub fn attach_sockets(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let id = fs::metadata(cgroup)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .map_err(|source| DatapathError::Cgroup {
                path: cgroup.display().to_string(),
                source,
            })?;
        for &program in SOCK_PROGRAMS {
            self.attach(program, &Target::Cgroup { path: cgroup, id })?;
        }
        Ok(())
    }

    /// The pin names of every attachment this datapath holds.
    #[must_use]
    pub fn link_names(&self) -> Vec<String> {
        self.links.keys().cloned().collect()
    }

    /// Removes every link pin this datapath does not hold (attachments an
    /// earlier agent made for endpoints or uplinks that are gone), which
    /// detaches them.
    pub fn prune_links(&mut self) -> Result<Vec<String>, DatapathError> {
        let Some(dir) = self.links_dir.clone() else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for entry in fs::read_dir(&dir).map_err(pin_file_err(&dir))? {
            let entry = entry.map_err(pin_file_err(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.links.contains_key(&name) {
                remove_pin(&entry.path())?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    fn attach_tcx(
        &mut self,
        program: &'static str,
        interface: &str,
        direction: TcAttachType,
    ) -> Result<(), DatapathError> {
        let ifindex = ifindex(interface).ok_or_else(|| DatapathError::Link {
            name: link_name(program, Some(interface)),
            source: io::Error::new(io::ErrorKind::NotFound, format!("no interface {interface}")),
        })?;
        self.attach(
            program,
            &Target::Tcx {
                interface,
                ifindex,
                direction,
            },
        )
    }

    /// Makes `program` run at `target`, reusing a link that is already
    /// there (ours from this run, or a pin an earlier agent left).
    fn attach(&mut self, program: &'static str, target: &Target<'_>) -> Result<(), DatapathError> {
        let name = match target {
            Target::Tcx { interface, .. } | Target::Xdp { interface, .. } => {
                link_name(program, Some(interface))
            }
            Target::Cgroup { .. } => link_name(program, None),
        };
        let link_err = |source| DatapathError::Link {
            name: name.clone(),
            source,
        };
        if let Some(held) = self.links.get(&name) {
            if held.attached_to(target) {
                return Ok(());
            }
            self.drop_link(&name)?;
        }
        let pin = self.links_dir.as_ref().map(|d| d.join(&name));
        if let Some(pin) = pin.as_ref().filter(|p| p.exists()) {
            let found = sys::obj_get(pin).ok().map(Held::Pinned);
            match found {
                Some(held) if held.attached_to(target) => {
                    let Held::Pinned(fd) = &held else {
                        unreachable!("made as Pinned")
                    };
                    let prog = self.program_fd(program)?;
                    sys::link_update(fd.as_fd(), prog.as_fd()).map_err(link_err)?;
                    self.links.insert(name, held);
                    return Ok(());
                }
                // Defunct (its device went away), elsewhere, or not a link.
                _ => remove_pin(pin)?,
            }
        }
        let link = self.new_link(program, target)?;
        let held = match &pin {
            Some(pin) => {
                let pinned = link.pin(pin).map_err(|source| DatapathError::Pin {
                    name: name.clone(),
                    path: pin.display().to_string(),
                    source,
                })?;
                // Our own descriptor; the pin holds the link from now on.
                let fd = sys::obj_get(pin).map_err(link_err)?;
                drop(pinned);
                Held::Pinned(fd)
            }
            None => Held::Unpinned(link),
        };
        self.links.insert(name, held);
        Ok(())
    }

    /// A new link of `program` at `target`.
    fn new_link(
        &mut self,
        program: &'static str,
        target: &Target<'_>,
    ) -> Result<FdLink, DatapathError> {
        let attach_err = |source| DatapathError::Attach {
            program,
            interface: target.describe(),
            source,
        };
        let as_fd_link = |e: LinkError| DatapathError::Link {
            name: program.to_owned(),
            source: io::Error::other(e),
        };
        match target {
            Target::Tcx {
                interface,
                direction,
                ..
            } => {
                let prog = classifier(&mut self.ebpf, program)?;
                let id = prog.attach(interface, *direction).map_err(attach_err)?;
                let link = prog.take_link(id).map_err(attach_err)?;
                FdLink::try_from(link).map_err(as_fd_link)
            }
            Target::Xdp {
                interface, mode, ..
            } => {
                let prog = xdp_program(&mut self.ebpf, program)?;
                let id = prog.attach(interface, *mode).map_err(attach_err)?;
                let link = prog.take_link(id).map_err(attach_err)?;
                FdLink::try_from(link).map_err(as_fd_link)
            }
            Target::Cgroup { path, .. } => {
                let file = File::open(path).map_err(|source| DatapathError::Cgroup {
                    path: path.display().to_string(),
                    source,
                })?;
                // A bpf_link on a cgroup always runs beside other programs;
                // the kernel refuses attach flags with `bpf_link_create`,
                // so the mode must be `Single` (no flags).
                let prog = sock_program(&mut self.ebpf, program)?;
                let id = prog
                    .attach(&file, CgroupAttachMode::Single)
                    .map_err(attach_err)?;
                let link = prog.take_link(id).map_err(attach_err)?;
                FdLink::try_from(link).map_err(as_fd_link)
            }
        }
    }

    fn program_fd(&mut self, program: &'static str) -> Result<OwnedFd, DatapathError> {
        let fd = if SOCK_PROGRAMS.contains(&program) {
            sock_program(&mut self.ebpf, program)?.fd()
        } else if program == Hook::XdpFromUplink.program() {
            xdp_program(&mut self.ebpf, program)?.fd()
        } else {
            classifier(&mut self.ebpf, program)?.fd()
        }
        .map_err(|source| DatapathError::Program { program, source })?;
        fd.as_fd()
            .try_clone_to_owned()
            .map_err(|source| DatapathError::Link {
                name: program.to_owned(),
                source,
            })
    }

    /// Lets go of link `name`: its pin is removed and its descriptor
    /// closed, which detaches it.
    fn drop_link(&mut self, name: &str) -> Result<(), DatapathError> {
        self.links.remove(name);
        if let Some(dir) = &self.links_dir {
            remove_pin(&dir.join(name))?;
        }
        Ok(())
    }
}

/// A link the datapath holds.
pub(super) enum Held {
    /// Pinned: our descriptor of it (the pin keeps it alive without us).
    Pinned(OwnedFd),
    /// Not pinned ([`Datapath::load`]): aya's handle, which detaches when
    /// dropped.
    Unpinned(#[expect(dead_code, reason = "held for its Drop, which detaches")] FdLink),
}

impl Held {
    /// Whether this link is attached at `target`. An unpinned link is
    /// never checked (there is no earlier agent to inherit from): it is
    /// taken as it is.
    fn attached_to(&self, target: &Target<'_>) -> bool {
        match self {
            Held::Pinned(fd) => sys::link_info(fd.as_fd()).is_ok_and(|i| target.holds(&i)),
            Held::Unpinned(_) => matches!(target, Target::Cgroup { .. }),
        }
    }
}

/// The ifindex of `interface` in the calling thread's namespace.
fn ifindex(interface: &str) -> Option<u32> {
    let name = std::ffi::CString::new(interface).ok()?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}
