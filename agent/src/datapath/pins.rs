//! The datapath under a bpffs root: maps reopened from their pins when
//! their layout is the one this object declares (rebuilt otherwise),
//! programs pinned by name, links pinned so that they outlive the agent.

use std::{
    fs, io,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData},
};
use weir_common::stats::Hook;

use super::{
    Datapath, DatapathError, OBJECT, SOCK_PROGRAMS, classifier, layout::Layout, map_names,
    sock_program, xdp_program,
};

/// Where the pins live: `<bpffs>/maps`, `links`, `progs`.
#[derive(Clone, Debug)]
pub struct PinDirs {
    pub maps: PathBuf,
    pub links: PathBuf,
    pub progs: PathBuf,
}

/// Each map's name and what [`Datapath::open`] did with it.
pub type MapOrigins = Vec<(&'static str, MapOrigin)>;

/// What [`Datapath::open`] did with a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapOrigin {
    /// Its pin was there with the same layout: entries and counters kept.
    Reused,
    /// No pin: made and pinned.
    Created,
    /// A pin was there with another layout (or was not a readable map):
    /// it was unpinned and a new, empty map pinned in its place.
    Rebuilt { differences: Vec<String> },
}

impl Datapath {
    /// Loads the object with its maps pinned in `dirs.maps`: a pin whose
    /// layout ([`Layout`]) is the object's is reused, so the programs that
    /// are still attached and the new ones share their entries; one whose
    /// layout differs is replaced by a new map. Programs are pinned in
    /// `dirs.progs`, links will be in `dirs.links`. Returns what happened
    /// to each map.
    pub fn open(dirs: &PinDirs) -> Result<(Self, MapOrigins), DatapathError> {
        for dir in [&dirs.maps, &dirs.links, &dirs.progs] {
            fs::create_dir_all(dir).map_err(pin_file_err(dir))?;
        }
        let origins = check_pinned_maps(&dirs.maps)?;
        let paths: Vec<(&'static str, PathBuf)> = map_names::ALL
            .iter()
            .map(|&m| (m, dirs.maps.join(m)))
            .collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(OBJECT)?;
        let mut datapath = Self::with_programs(ebpf, Some(dirs.links.clone()))?;
        datapath.pin_programs(&dirs.progs)?;
        Ok((datapath, origins))
    }

    /// Pins every program at `dir/<name>`, replacing older pins, so that
    /// `bpftool prog show pinned` finds the programs in use.
    fn pin_programs(&mut self, dir: &Path) -> Result<(), DatapathError> {
        let names: Vec<&'static str> = Hook::ALL
            .iter()
            .map(|h| h.program())
            .chain(SOCK_PROGRAMS.iter().copied())
            .chain(Hook::TAIL_PROGRAMS.iter().copied())
            .collect();
        for name in names {
            let path = dir.join(name);
            remove_pin(&path)?;
            let pinned = if SOCK_PROGRAMS.contains(&name) {
                sock_program(&mut self.ebpf, name)?.pin(&path)
            } else if name == Hook::XdpFromUplink.program() {
                xdp_program(&mut self.ebpf, name)?.pin(&path)
            } else {
                classifier(&mut self.ebpf, name)?.pin(&path)
            };
            pinned.map_err(|source| DatapathError::Pin {
                name: name.to_owned(),
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Compares each pinned map with the layout the object declares (read
/// from a throwaway copy of the object's maps, so both sides come from the
/// kernel the same way) and unpins those that differ.
fn check_pinned_maps(dir: &Path) -> Result<MapOrigins, DatapathError> {
    // Made only when some pin is there to compare (not on a first start).
    let mut wanted: Option<Ebpf> = None;
    let mut origins = Vec::new();
    for &name in map_names::ALL {
        let path = dir.join(name);
        if !path.exists() {
            origins.push((name, MapOrigin::Created));
            continue;
        }
        if wanted.is_none() {
            wanted = Some(Ebpf::load(OBJECT)?);
        }
        let data = wanted
            .as_ref()
            .expect("made just above")
            .map(name)
            .and_then(map_data)
            .ok_or(DatapathError::MissingMap(name))?;
        let want = Layout::of(data.fd().as_fd())
            .map_err(|source| DatapathError::Layout { map: name, source })?;
        let found = MapData::from_pin(&path)
            .ok()
            .and_then(|m| Layout::of(m.fd().as_fd()).ok());
        let origin = match found {
            Some(found) if found == want => MapOrigin::Reused,
            Some(found) => MapOrigin::Rebuilt {
                differences: found.differences(&want),
            },
            None => MapOrigin::Rebuilt {
                differences: vec!["the pin is not a map this agent can read".to_owned()],
            },
        };
        if matches!(origin, MapOrigin::Rebuilt { .. }) {
            remove_pin(&path)?;
        }
        origins.push((name, origin));
    }
    Ok(origins)
}

/// The `MapData` of the map kinds the object declares.
pub(super) fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(m)
        | Map::HashMap(m)
        | Map::LruHashMap(m)
        | Map::LpmTrie(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuHashMap(m)
        | Map::RingBuf(m)
        | Map::ProgramArray(m) => Some(m),
        _ => None,
    }
}

/// Removes a pin (absent is fine). Removing a link's pin, with no
/// descriptor left, detaches it; a map's or program's frees it once
/// nothing uses it.
pub(super) fn remove_pin(path: &Path) -> Result<(), DatapathError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(pin_file_err(path)(e)),
        _ => Ok(()),
    }
}

pub(super) fn pin_file_err(path: &Path) -> impl FnOnce(io::Error) -> DatapathError {
    let path = path.display().to_string();
    move |source| DatapathError::PinFile { path, source }
}
