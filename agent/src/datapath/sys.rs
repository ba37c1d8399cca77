//! The few bpf(2) commands aya 0.14 does not expose: a map's full info
//! (with its BTF ids), the bytes of a BTF object, a link's info,
//! replacing the program behind a link, taking a hash map's entry out
//! with its value in one step, and reading a hash map in batches.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
const BPF_NOEXIST: u64 = 1;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries a batch asks for at first (a bucket larger than that doubles it).
const BATCH: usize = 4096;

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `union bpf_attr` for `BPF_OBJ_GET`.
#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `union bpf_attr` for the `*_GET_FD_BY_ID` commands.
#[repr(C)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_LINK_UPDATE`.
#[repr(C)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// `struct bpf_map_info` (the fields up to `map_extra`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; 16],
    pub ifindex: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_id: u32,
    pub map_extra: u64,
}

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Default)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// `struct bpf_link_info`: the common head and the tcx member of the union
/// (the union is 8-byte aligned; room for its largest member).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    pad: u32,
    /// For a tcx link: the device's ifindex (0 once it is gone), then the
    /// attach type. An XDP link's ifindex is in the same place.
    pub tcx_ifindex: u32,
    pub tcx_attach_type: u32,
    rest: [u64; 8],
}

/// `BPF_LINK_TYPE_TCX`.
pub const LINK_TYPE_TCX: u32 = 11;
/// `BPF_LINK_TYPE_XDP`.
pub const LINK_TYPE_XDP: u32 = 6;

impl LinkInfo {
    /// For a cgroup link: the cgroup's id (the inode of its directory).
    #[must_use]
    pub fn cgroup_id(&self) -> u64 {
        u64::from(self.tcx_ifindex) | (u64::from(self.tcx_attach_type) << 32)
    }
}

/// `union bpf_attr` for the map element commands.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Removes `key`'s entry from the hash map `fd` and returns the value it
/// had when it went, in one step (no packet can change it in between);
/// `None` when there is none.
pub fn map_take<K: aya::Pod, V: aya::Pod>(fd: BorrowedFd<'_>, key: &K) -> io::Result<Option<V>> {
    let mut value = std::mem::MaybeUninit::<V>::zeroed();
    let mut attr = ElemAttr {
        map_fd: fd_u32(fd),
        pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    match bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) {
        // SAFETY: the kernel wrote a whole value (`V` is `Pod`: any bytes
        // are a valid value).
        Ok(_) => Ok(Some(unsafe { value.assume_init() })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `union bpf_attr` for the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of the hash map `fd` (not a per-CPU one), read
/// [`BATCH`] at a time with `BPF_MAP_LOOKUP_BATCH`: one call for thousands
/// of entries where a walk by `BPF_MAP_GET_NEXT_KEY` makes two for each
/// (a sweep of a table of new connections reads hundreds of thousands).
/// The kernel copies each bucket whole, under its lock: an entry added or
/// removed meanwhile is in the result or not, never half.
pub fn map_entries<K: aya::Pod, V: aya::Pod>(fd: BorrowedFd<'_>) -> io::Result<Vec<(K, V)>> {
    batches(fd, BATCH)
}

/// [`map_entries`], asking for `room` entries a batch at first.
fn batches<K: aya::Pod, V: aya::Pod>(
    fd: BorrowedFd<'_>,
    mut room: usize,
) -> io::Result<Vec<(K, V)>> {
    let (mut keys, mut values) = (zeroed::<K>(room), zeroed::<V>(room));
    let mut out = Vec::new();
    // The kernel's position in a hash map: a bucket index.
    let (mut at, mut next) = (None::<u32>, 0u32);
    loop {
        let mut attr = BatchAttr {
            in_batch: at.as_ref().map_or(0, |b| std::ptr::from_ref(b) as u64),
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(room).expect("a batch's size"),
            map_fd: fd_u32(fd),
            elem_flags: 0,
            flags: 0,
        };
        let rc = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = usize::try_from(attr.count).expect("a count").min(room);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        match rc {
            Ok(_) => at = Some(next),
            // The last bucket read.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            // A bucket holds more than the room: again with twice as much.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && n == 0 => {
                room *= 2;
                (keys, values) = (zeroed::<K>(room), zeroed::<V>(room));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `n` values of all zero bytes (valid: `T` is `Pod`).
fn zeroed<T: aya::Pod>(n: usize) -> Vec<T> {
    // SAFETY: a `Pod` type is valid for any bytes, zeroes included.
    vec![unsafe { std::mem::zeroed::<T>() }; n]
}

/// Puts `value` under `key` in the hash map `fd` unless the key has an
/// entry already; returns whether it did.
pub fn map_insert_new<K: aya::Pod, V: aya::Pod>(
    fd: BorrowedFd<'_>,
    key: &K,
    value: &V,
) -> io::Result<bool> {
    let mut attr = ElemAttr {
        map_fd: fd_u32(fd),
        pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_ref(value) as u64,
        flags: BPF_NOEXIST,
    };
    match bpf(BPF_MAP_UPDATE_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a `repr(C)` prefix of `union bpf_attr`, valid for
    // its size; the kernel reads no further than the size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn info_by_fd<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd),
        info_len: u32::try_from(std::mem::size_of::<T>()).expect("small struct"),
        info: std::ptr::from_mut(info) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

fn new_fd(raw: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us.
    unsafe { OwnedFd::from_raw_fd(i32::try_from(raw).expect("file descriptors fit i32")) }
}

/// A new descriptor of the object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = ObjGetAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    bpf(BPF_OBJ_GET, &mut attr).map(new_fd)
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).expect("file descriptors are not negative")
}

/// The kernel's description of the map behind `fd`.
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    let mut info = MapInfo::default();
    info_by_fd(fd, &mut info)?;
    Ok(info)
}

/// The kernel's description of the link behind `fd`.
pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut info = LinkInfo::default();
    info_by_fd(fd, &mut info)?;
    Ok(info)
}

/// The raw bytes of BTF object `id` (header, types, strings).
pub fn btf_bytes(id: u32) -> io::Result<Vec<u8>> {
    let mut attr = IdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    let fd = new_fd(bpf(BPF_BTF_GET_FD_BY_ID, &mut attr)?);
    let fd = std::os::fd::AsFd::as_fd(&fd);
    let mut info = BtfInfo::default();
    info_by_fd(fd, &mut info)?;
    let mut buf = vec![0u8; info.btf_size as usize];
    let mut info = BtfInfo {
        btf: buf.as_mut_ptr() as u64,
        btf_size: info.btf_size,
        ..BtfInfo::default()
    };
    info_by_fd(fd, &mut info)?;
    buf.truncate(info.btf_size as usize);
    Ok(buf)
}

/// Atomically replaces the program behind link `link` with `prog`; the
/// hook never runs without a program.
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: fd_u32(link),
        new_prog_fd: fd_u32(prog),
        flags: 0,
        old_prog_fd: 0,
    };
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, os::fd::AsFd};

    use super::*;

    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_HASH: u32 = 1;
    /// A hash of fixed seed: the same keys fall in the same buckets.
    const BPF_F_ZERO_SEED: u32 = 1 << 6;

    /// `union bpf_attr` for `BPF_MAP_CREATE` (up to `map_flags`).
    #[repr(C)]
    struct CreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }

    fn hash_map(max_entries: u32) -> OwnedFd {
        let mut attr = CreateAttr {
            map_type: BPF_MAP_TYPE_HASH,
            key_size: 4,
            value_size: 8,
            max_entries,
            map_flags: BPF_F_ZERO_SEED,
        };
        new_fd(bpf(BPF_MAP_CREATE, &mut attr).expect("BPF_MAP_CREATE (as root)"))
    }

    /// Batches of one entry meet buckets of two and more (1000 keys in
    /// 1024 buckets): each such bucket doubles the room, and every entry
    /// comes out once, with its value; an empty map reads as empty.
    #[test]
    fn batches_read_every_entry_once_whatever_the_buckets_hold() {
        let map = hash_map(1000);
        assert!(batches::<u32, u64>(map.as_fd(), 1).unwrap().is_empty());
        let want: BTreeMap<u32, u64> = (0..1000).map(|k| (k * 7919, u64::from(k) << 20)).collect();
        for (k, v) in &want {
            assert!(map_insert_new(map.as_fd(), k, v).unwrap());
        }
        for room in [1, 3, BATCH] {
            let got = batches::<u32, u64>(map.as_fd(), room).unwrap();
            assert_eq!(got.len(), want.len(), "room {room}");
            assert_eq!(
                got.into_iter().collect::<BTreeMap<_, _>>(),
                want,
                "room {room}"
            );
        }
    }
}
