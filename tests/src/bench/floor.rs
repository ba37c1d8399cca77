//! The floor under the per-packet costs: two tc programs of one and
//! three instructions, loaded from raw BPF with `BPF_PROG_LOAD` and timed
//! by [`super::testrun`] exactly as the datapath's programs are. One only
//! returns (what running any program costs by that measure); the other
//! makes one helper call first (`bpf_ktime_get_coarse_ns`, which reads a
//! variable), the price of each helper or map lookup a packet needs.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_FUNC_KTIME_GET_COARSE_NS: i32 = 160;

/// `struct bpf_prog_info`: its size and where the run-time account is.
const INFO_LEN: usize = 232;
const INFO_RUN_TIME_NS: usize = 192;
const INFO_RUN_CNT: usize = 200;

/// One BPF instruction, as `struct bpf_insn` lays it out.
fn insn(code: u8, regs: u8, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = regs;
    b[4..].copy_from_slice(&imm.to_le_bytes());
    b
}

/// `r0 = 0` (`TC_ACT_OK`).
fn ret_ok() -> [u8; 8] {
    insn(0xb7, 0, 0)
}

fn exit() -> [u8; 8] {
    insn(0x95, 0, 0)
}

fn call(helper: i32) -> [u8; 8] {
    insn(0x85, 0, helper)
}

/// A loaded tc program of our own.
pub struct Floor {
    fd: OwnedFd,
}

impl Floor {
    /// A program that only returns `TC_ACT_OK`.
    pub fn empty() -> io::Result<Self> {
        Self::load(&[ret_ok(), exit()])
    }

    /// A program that makes one helper call, then returns `TC_ACT_OK`.
    pub fn one_helper() -> io::Result<Self> {
        Self::load(&[call(BPF_FUNC_KTIME_GET_COARSE_NS), ret_ok(), exit()])
    }

    fn load(insns: &[[u8; 8]]) -> io::Result<Self> {
        let code: Vec<u8> = insns.concat();
        let license = c"GPL";
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
        let count = u32::try_from(insns.len()).expect("a short program");
        attr[4..8].copy_from_slice(&count.to_ne_bytes());
        attr[8..16].copy_from_slice(&(code.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        attr[48..58].copy_from_slice(b"weir_floor");
        let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Runs the program once on `frame`; returns its verdict.
    pub fn run(&self, frame: &[u8]) -> io::Result<u32> {
        self.run_repeated(frame, 1).map(|(verdict, _)| verdict)
    }

    /// Runs the program `repeat` times on one skb made from `frame`;
    /// returns the last verdict and the kernel's mean nanoseconds per run.
    pub fn run_repeated(&self, frame: &[u8], repeat: u32) -> io::Result<(u32, u32)> {
        let mut attr = [0u8; 80];
        attr[0..4].copy_from_slice(&self.fd.as_raw_fd().to_ne_bytes());
        let len = u32::try_from(frame.len()).expect("a frame");
        attr[8..12].copy_from_slice(&len.to_ne_bytes());
        attr[16..24].copy_from_slice(&(frame.as_ptr() as u64).to_ne_bytes());
        attr[32..36].copy_from_slice(&repeat.to_ne_bytes());
        bpf(BPF_PROG_TEST_RUN, &mut attr)?;
        let word = |at: usize| u32::from_ne_bytes(attr[at..at + 4].try_into().expect("4 bytes"));
        Ok((word(4), word(36)))
    }

    /// The kernel's account: nanoseconds run and runs so far.
    pub fn run_time(&self) -> io::Result<(u64, u64)> {
        let mut info = [0u8; INFO_LEN];
        let mut attr = [0u8; 16];
        attr[0..4].copy_from_slice(&self.fd.as_raw_fd().to_ne_bytes());
        attr[4..8].copy_from_slice(&u32::try_from(INFO_LEN).expect("small").to_ne_bytes());
        attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        let word = |at: usize| u64::from_ne_bytes(info[at..at + 8].try_into().expect("8 bytes"));
        Ok((word(INFO_RUN_TIME_NS), word(INFO_RUN_CNT)))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<i32> {
    // SAFETY: `attr` is a live buffer of the length we pass, laid out as
    // the command's `union bpf_attr` member; the pointers in it point at
    // buffers that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            libc::c_uint::try_from(attr.len()).expect("small"),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::try_from(rc).expect("a descriptor or 0"))
}
