//! Attaching the programs: `tc_from_container` on container veths,
//! `tc_from_uplink` on uplinks (both tcx ingress, resolved in the calling
//! thread's network namespace), and the socket programs on a cgroup.

use std::{fs::File, path::Path};

use aya::programs::{CgroupAttachMode, TcAttachType};
use weir_common::stats::Hook;

use super::{Datapath, DatapathError, SOCK_PROGRAMS, classifier, sock_program};

impl Datapath {
    /// Attaches `tc_from_container` to tcx ingress of `interface` (the host
    /// side of a container veth), in the calling thread's network namespace.
    pub fn attach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        let program = Hook::FromContainer.program();
        let prog = classifier(&mut self.ebpf, program)?;
        if let Some(old) = self.container_links.remove(interface) {
            // A veth of the same name was replaced: its old link is defunct.
            let _ = prog.detach(old);
        }
        let link = prog
            .attach(interface, TcAttachType::Ingress)
            .map_err(|source| DatapathError::Attach {
                program,
                interface: interface.to_owned(),
                source,
            })?;
        self.container_links.insert(interface.to_owned(), link);
        Ok(())
    }

    /// Detaches `tc_from_container` from `interface` (a no-op when it is
    /// not attached; a link whose device is gone detaches quietly).
    pub fn detach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        let program = Hook::FromContainer.program();
        if let Some(link) = self.container_links.remove(interface) {
            let _ = classifier(&mut self.ebpf, program)?.detach(link);
        }
        Ok(())
    }

    /// Attaches `tc_from_uplink` to tcx ingress and `tc_to_uplink` to tcx
    /// egress of `interface`.
    pub fn attach_uplink(&mut self, interface: &str) -> Result<(), DatapathError> {
        for (hook, direction) in [
            (Hook::FromUplink, TcAttachType::Ingress),
            (Hook::ToUplink, TcAttachType::Egress),
        ] {
            let program = hook.program();
            let prog = classifier(&mut self.ebpf, program)?;
            let key = (interface.to_owned(), program);
            if let Some(old) = self.uplink_links.remove(&key) {
                let _ = prog.detach(old);
            }
            let link =
                prog.attach(interface, direction)
                    .map_err(|source| DatapathError::Attach {
                        program,
                        interface: interface.to_owned(),
                        source,
                    })?;
            self.uplink_links.insert(key, link);
        }
        Ok(())
    }

    /// Attaches the socket programs to the cgroup at `cgroup` (a cgroup v2
    /// directory; its root covers every process). Other agents' programs
    /// stay attached beside ours: each acts only in its own namespace.
    pub fn attach_sockets(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        let file = File::open(cgroup).map_err(|source| DatapathError::Cgroup {
            path: cgroup.display().to_string(),
            source,
        })?;
        for &program in SOCK_PROGRAMS {
            // A bpf_link on a cgroup always runs beside other programs;
            // the kernel refuses attach flags with `bpf_link_create`, so
            // the mode must be `Single` (no flags).
            let link = sock_program(&mut self.ebpf, program)?
                .attach(&file, CgroupAttachMode::Single)
                .map_err(|source| DatapathError::Attach {
                    program,
                    interface: format!("cgroup {}", cgroup.display()),
                    source,
                })?;
            self.sock_links.push((program, link));
        }
        Ok(())
    }
}
