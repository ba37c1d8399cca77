//! A map's layout as the kernel holds it: its type, sizes, flags and the
//! shapes of its key and value read from the map's BTF. Two maps with the
//! same layout can be read with the same types; a pinned map whose layout
//! differs from the one this datapath declares is never reused.

use std::{fmt, io, os::fd::BorrowedFd};

use super::sys;

/// What decides whether a pinned map can serve this datapath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// The key's and the value's types, rendered from BTF with every
    /// member's name, type and bit offset (`void` when the map has none).
    pub key: String,
    pub value: String,
}

impl Layout {
    /// The layout of the map behind `fd`.
    pub fn of(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let info = sys::map_info(fd)?;
        let (key, value) = if info.btf_id == 0 {
            ("void".to_owned(), "void".to_owned())
        } else {
            let btf = Btf::parse(&sys::btf_bytes(info.btf_id)?)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable BTF"))?;
            (
                btf.render(info.btf_key_type_id),
                btf.render(info.btf_value_type_id),
            )
        };
        Ok(Self {
            map_type: info.map_type,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            flags: info.map_flags,
            key,
            value,
        })
    }

    /// What differs between `self` (found) and `wanted`, for the log.
    #[must_use]
    pub fn differences(&self, wanted: &Layout) -> Vec<String> {
        let mut out = Vec::new();
        let nums = [
            ("type", self.map_type, wanted.map_type),
            ("key size", self.key_size, wanted.key_size),
            ("value size", self.value_size, wanted.value_size),
            ("max entries", self.max_entries, wanted.max_entries),
            ("flags", self.flags, wanted.flags),
        ];
        for (what, found, want) in nums {
            if found != want {
                out.push(format!("{what} {found} -> {want}"));
            }
        }
        for (what, found, want) in [
            ("key", &self.key, &wanted.key),
            ("value", &self.value, &wanted.value),
        ] {
            if found != want {
                out.push(format!("{what} `{found}` -> `{want}`"));
            }
        }
        out
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {}, {} x ({} B key `{}`, {} B value `{}`)",
            self.map_type, self.max_entries, self.key_size, self.key, self.value_size, self.value
        )
    }
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

/// One BTF type: kind, name offset, the `size`/`type` word (a size or a
/// referenced type id), the words after it.
struct Type {
    kind: u32,
    kind_flag: bool,
    name: u32,
    size_or_ref: u32,
    extra: Vec<u32>,
}

/// Raw BTF (as `BPF_OBJ_GET_INFO_BY_FD` gives it), enough to render types.
struct Btf {
    /// Index 0 is `void`.
    types: Vec<Option<Type>>,
    strings: Vec<u8>,
}

impl Btf {
    fn parse(data: &[u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
        };
        if data.get(0..2)? != [0x9f, 0xeb] {
            return None; // little-endian magic 0xeB9F
        }
        let hdr_len = word(4)? as usize;
        let (type_off, type_len) = (word(8)? as usize, word(12)? as usize);
        let str_off = word(16)? as usize;
        let strings = data.get(hdr_len + str_off..)?.to_vec();
        let mut types = vec![None];
        let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
        while at < end {
            let info = word(at + 4)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let words = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 1,
                KIND_ARRAY => 3,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 3 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 2 * vlen,
                _ => 0,
            };
            let extra = (0..words)
                .map(|i| word(at + 12 + 4 * i))
                .collect::<Option<Vec<u32>>>()?;
            types.push(Some(Type {
                kind,
                kind_flag: info >> 31 == 1,
                name: word(at)?,
                size_or_ref: word(at + 8)?,
                extra,
            }));
            at += 12 + 4 * words;
        }
        Some(Self { types, strings })
    }

    /// Type `id` as text: structs with every member, arrays with their
    /// length, modifiers and typedefs seen through.
    fn render(&self, id: u32) -> String {
        self.render_at(id, 0)
    }

    fn render_at(&self, id: u32, depth: u32) -> String {
        if depth > 16 {
            return "...".to_owned();
        }
        let Some(Some(t)) = self.types.get(id as usize) else {
            return "void".to_owned();
        };
        match t.kind {
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_FWD => {
                format!("{}/{}", self.name(t.name), t.size_or_ref)
            }
            KIND_PTR => "ptr".to_owned(),
            KIND_ARRAY => format!(
                "[{}; {}]",
                self.render_at(t.extra[0], depth + 1),
                t.extra[2]
            ),
            KIND_STRUCT | KIND_UNION => {
                let members: Vec<String> = t
                    .extra
                    .chunks(3)
                    .map(|m| {
                        let (name, ty, offset) = (m[0], m[1], m[2]);
                        let (bits, offset) = if t.kind_flag {
                            (offset >> 24, offset & 0x00ff_ffff)
                        } else {
                            (0, offset)
                        };
                        let bits = if bits == 0 {
                            String::new()
                        } else {
                            format!(":{bits}")
                        };
                        format!(
                            "{}: {}{bits} @{offset}",
                            self.name(name),
                            self.render_at(ty, depth + 1)
                        )
                    })
                    .collect();
                let word = if t.kind == KIND_STRUCT {
                    "struct"
                } else {
                    "union"
                };
                format!(
                    "{word} {}/{} {{ {} }}",
                    self.name(t.name),
                    t.size_or_ref,
                    members.join(", ")
                )
            }
            // Typedefs, const, volatile, restrict, type tags: what they
            // refer to is what counts.
            _ => self.render_at(t.size_or_ref, depth + 1),
        }
    }

    /// The string at `offset` of the string section.
    fn name(&self, offset: u32) -> String {
        let s = self.strings.get(offset as usize..).unwrap_or_default();
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..end]).into_owned()
    }
}
