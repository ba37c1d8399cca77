//! The floor under the per-packet costs: tc programs of a few
//! instructions, loaded from raw BPF with `BPF_PROG_LOAD` and timed by
//! [`super::testrun`] exactly as the datapath's programs are. One only
//! returns (what running any program costs by that measure); one makes a
//! helper call first (`bpf_ktime_get_coarse_ns`, which reads a variable),
//! the price of each helper a packet needs; two work on an LRU hash of
//! `CT4`'s key size, value size and capacity: one inserts a key of a
//! random word (`bpf_get_prandom_u32`, a helper call) as a new flow's
//! entry goes in, the other looks up a key that is there, as a packet of
//! a known flow does. The rest of a new flow is made of these.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use weir_common::ct::{CtEntry, CtKey, MAX_CT_ENTRIES};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;
const BPF_FUNC_GET_PRANDOM_U32: i32 = 7;
const BPF_FUNC_KTIME_GET_COARSE_NS: i32 = 160;
const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const R10: u8 = 10;
const TC_ACT_SHOT: i32 = 2;
/// Where the programs keep a key and a value on their stack.
const KEY_OFF: i16 = -16;
const VALUE_OFF: i16 = -80;
/// `CT4`'s sizes: the floor's table costs what the datapath's does.
const KEY_SIZE: usize = size_of::<CtKey>();
const VALUE_SIZE: usize = size_of::<CtEntry>();

/// `struct bpf_prog_info`: its size and where the run-time account is.
const INFO_LEN: usize = 232;
const INFO_RUN_TIME_NS: usize = 192;
const INFO_RUN_CNT: usize = 200;

/// One BPF instruction, as `struct bpf_insn` lays it out.
fn insn(code: u8, regs: u8, imm: i32) -> [u8; 8] {
    insn_off(code, regs, 0, imm)
}

fn insn_off(code: u8, regs: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = regs;
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..].copy_from_slice(&imm.to_le_bytes());
    b
}

/// `*(u64 *)(r10 + off) = 0`.
fn zero_stack(off: i16) -> [u8; 8] {
    insn_off(0x7a, R10, off, 0)
}

/// `reg = r10 + off`: a pointer into the stack, in two instructions.
fn stack_ptr(reg: u8, off: i16) -> [[u8; 8]; 2] {
    [
        insn(0xbf, reg | (R10 << 4), 0),
        insn(0x07, reg, i32::from(off)),
    ]
}

/// `r1 = map` (`BPF_LD | BPF_IMM | BPF_DW` with a map descriptor).
fn load_map(fd: i32) -> [[u8; 8]; 2] {
    [insn(0x18, 1 | (BPF_PSEUDO_MAP_FD << 4), fd), [0; 8]]
}

/// `TC_ACT_OK` if `r0` compares to 0 by `jump` (`BPF_JMP | op | BPF_K`),
/// else `TC_ACT_SHOT`: a floor that failed would not pass for a figure.
fn ok_if(jump: u8) -> [[u8; 8]; 5] {
    [
        insn_off(jump, 0, 2, 0),
        insn(0xb7, 0, TC_ACT_SHOT),
        exit(),
        ret_ok(),
        exit(),
    ]
}

/// A zero key with `word` (a register) in its first four bytes, and a
/// zero value, on the stack.
fn key_and_value(word: u8) -> Vec<[u8; 8]> {
    let mut v = vec![
        zero_stack(KEY_OFF),
        zero_stack(KEY_OFF + 8),
        // `*(u32 *)(r10 + KEY_OFF) = word`
        insn_off(0x63, R10 | (word << 4), KEY_OFF, 0),
    ];
    v.extend((0..8).map(|i| zero_stack(VALUE_OFF + 8 * i)));
    v
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

/// A loaded tc program of our own (and the map it works on, if any).
pub struct Floor {
    fd: OwnedFd,
    _map: Option<OwnedFd>,
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

    /// A program that inserts a new key (its first word random) into an
    /// LRU hash the size of `CT4`, then returns `TC_ACT_OK` (`TC_ACT_SHOT` if the insert failed).
    pub fn lru_insert() -> io::Result<Self> {
        let map = lru_map()?;
        let mut insns = vec![call(BPF_FUNC_GET_PRANDOM_U32)];
        insns.extend(key_and_value(0));
        insns.extend(load_map(map.as_raw_fd()));
        insns.extend(stack_ptr(2, KEY_OFF));
        insns.extend(stack_ptr(3, VALUE_OFF));
        insns.extend([insn(0xb7, 4, 0), call(BPF_FUNC_MAP_UPDATE_ELEM)]);
        // The update returned 0?
        insns.extend(ok_if(0x15));
        Self::load_with(&insns, Some(map))
    }

    /// A program that looks up, in an LRU hash the size of `CT4`, a key
    /// that is there, then returns `TC_ACT_OK` (`TC_ACT_SHOT` on a miss).
    pub fn lru_lookup() -> io::Result<Self> {
        let map = lru_map()?;
        let mut key = [0u8; KEY_SIZE];
        key[0] = 1;
        update(&map, &key, &[0; VALUE_SIZE])?;
        // r6 = 1: the key's first word.
        let mut insns = vec![insn(0xb7, 6, 1)];
        insns.extend(key_and_value(6));
        insns.extend(load_map(map.as_raw_fd()));
        insns.extend(stack_ptr(2, KEY_OFF));
        insns.push(call(BPF_FUNC_MAP_LOOKUP_ELEM));
        // The lookup found the entry?
        insns.extend(ok_if(0x55));
        Self::load_with(&insns, Some(map))
    }

    fn load(insns: &[[u8; 8]]) -> io::Result<Self> {
        Self::load_with(insns, None)
    }

    fn load_with(insns: &[[u8; 8]], map: Option<OwnedFd>) -> io::Result<Self> {
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
            _map: map,
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

/// An LRU hash of `CT4`'s key and value sizes and capacity.
fn lru_map() -> io::Result<OwnedFd> {
    let mut attr = [0u8; 72];
    for (at, word) in [
        (0, BPF_MAP_TYPE_LRU_HASH),
        (4, u32::try_from(KEY_SIZE).expect("small")),
        (8, u32::try_from(VALUE_SIZE).expect("small")),
        (12, MAX_CT_ENTRIES),
    ] {
        attr[at..at + 4].copy_from_slice(&word.to_ne_bytes());
    }
    attr[28..41].copy_from_slice(b"weir_floor_ct");
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&map.as_raw_fd().to_ne_bytes());
    attr[8..16].copy_from_slice(&(key.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(value.as_ptr() as u64).to_ne_bytes());
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
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
