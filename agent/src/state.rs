//! The agent's desired state on disk: one JSON document, replaced
//! atomically (written to a temporary file in the same directory, then
//! renamed over the old one), so a crash of the agent leaves either the
//! old or the new state, never half.
//!
//! Small, frequent changes (a port published or withdrawn) go to a
//! [`Journal`] next to it instead: one JSON line appended per change, a
//! single `write` however big the state is. Loading replays the journal
//! over the document; writing the document empties the journal. A crash
//! between the two replays changes the document already holds, so a
//! change must mean the same applied twice. A torn last line (a crash in
//! the middle of an append) is a change that never happened.
//!
//! The rename is what an API call waits for: from then on the change
//! survives the agent (the page cache holds it). Making it survive a power
//! loss too (fsync of the file and of the directory, several milliseconds
//! on a journalled disk) happens right after on a thread of its own, off
//! the request's path. What a power loss can lose is the last few
//! milliseconds of changes; a reboot loses the network namespaces, veths
//! and pinned maps they were about anyway.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::error::Chain;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading state {path}: {error}")]
    Read { path: PathBuf, error: io::Error },
    #[error("state file {path} is not valid: {error}")]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("writing state {path}: {error}")]
    Write { path: PathBuf, error: io::Error },
}

/// Loads the state at `path`; `Ok(None)` when there is none yet.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                error,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| StateError::Parse {
            path: path.to_owned(),
            error,
        })
}

/// Makes `file` (and the directory that names it) survive a power loss,
/// on a thread of its own.
fn sync_in_background(file: File, dir: PathBuf) {
    std::thread::spawn(move || {
        if let Err(e) = file.sync_all().and_then(|()| File::open(&dir)?.sync_all()) {
            tracing::warn!(dir = %dir.display(), "state not synced to disk: {}", Chain(&e));
        }
    });
}

/// Appended changes since the state file was last written.
pub struct Journal {
    path: PathBuf,
    /// Open for appending once the first change is written.
    file: Option<File>,
    lines: usize,
}

impl Journal {
    /// The journal at `path`, as it is on disk (see [`Journal::load`]).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            lines: 0,
        }
    }

    /// The changes in the journal, oldest first; none when there is no
    /// journal. A last line that does not parse is left out (a torn
    /// append); any other is an error.
    pub fn load<C: DeserializeOwned>(&self) -> Result<Vec<C>, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    error,
                });
            }
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut changes = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(c) => changes.push(c),
                Err(e) if i + 1 == lines.len() && !text.ends_with('\n') => {
                    tracing::warn!(
                        path = %self.path.display(),
                        "ignoring a torn last change in the journal: {}",
                        Chain(&e)
                    );
                }
                Err(error) => {
                    return Err(StateError::Parse {
                        path: self.path.clone(),
                        error,
                    });
                }
            }
        }
        Ok(changes)
    }

    /// Appends `change` as one line. Like [`save`], it has reached the
    /// page cache when this returns; the sync to disk runs on a thread.
    pub fn append<C: Serialize>(&mut self, change: &C) -> Result<(), StateError> {
        let err = |error| StateError::Write {
            path: self.path.clone(),
            error,
        };
        let mut line = serde_json::to_vec(change).map_err(|e| err(io::Error::other(e)))?;
        line.push(b'\n');
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(err)?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(&line).map_err(err)?;
        self.lines += 1;
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_owned();
        sync_in_background(file.try_clone().map_err(err)?, dir);
        Ok(())
    }

    /// Changes appended since the journal was last emptied.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lines
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Empties the journal: the state file now holds every change.
    pub fn clear(&mut self) -> Result<(), StateError> {
        self.file = None;
        self.lines = 0;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StateError::Write {
                path: self.path.clone(),
                error: e,
            }),
            _ => Ok(()),
        }
    }
}

/// Replaces the state at `path` with `value`, atomically, and writes the
/// same to `copy` (the last good copy) after it: a state file lost or
/// broken later is one `--restore-state` away.
pub fn save<T: Serialize>(path: &Path, copy: Option<&Path>, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec(value).map_err(|e| StateError::Write {
        path: path.to_owned(),
        error: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    for to in std::iter::once(path).chain(copy) {
        replace(to, &bytes).map_err(|error| StateError::Write {
            path: to.to_owned(),
            error,
        })?;
    }
    Ok(())
}

/// Replaces the file at `path` with `bytes`, atomically.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    fs::rename(&tmp, path)?;
    // The renamed file is still `file`'s inode.
    sync_in_background(file, dir.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn missing_state_is_none_and_saved_state_loads_back() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("state.json");
        assert!(load::<BTreeMap<String, u32>>(&path).unwrap().is_none());
        let state = BTreeMap::from([("a".to_owned(), 1u32), ("b".to_owned(), 2)]);
        save(&path, None, &state).unwrap();
        assert_eq!(load::<BTreeMap<String, u32>>(&path).unwrap(), Some(state));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_journal_gives_back_its_changes_and_forgets_a_torn_last_one() {
        let dir = temp_dir("journal");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.journal");
        let mut j = Journal::new(path.clone());
        assert!(j.load::<u32>().unwrap().is_empty());
        j.append(&1u32).unwrap();
        j.append(&2u32).unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(Journal::new(path.clone()).load::<u32>().unwrap(), [1, 2]);
        // A crash in the middle of the third append.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"[3")
            .unwrap();
        assert_eq!(Journal::new(path.clone()).load::<u32>().unwrap(), [1, 2]);
        // A bad line before the last is not a torn append: an error.
        fs::write(&path, "1\nx\n2\n").unwrap();
        let err = Journal::new(path.clone()).load::<u32>().unwrap_err();
        assert!(err.to_string().contains("state.journal"));
        j.clear().unwrap();
        assert!(!path.exists() && j.is_empty());
        j.clear().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_the_file() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        fs::write(&path, b"{ half").unwrap();
        let err = load::<BTreeMap<String, u32>>(&path).unwrap_err();
        assert!(matches!(err, StateError::Parse { .. }));
        assert!(err.to_string().contains("state.json"));
        fs::remove_dir_all(dir).unwrap();
    }
}
