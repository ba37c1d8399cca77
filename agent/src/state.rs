//! The agent's desired state on disk: one JSON document, replaced
//! atomically (written to a temporary file in the same directory, then
//! renamed over the old one), so a crash of the agent leaves either the
//! old or the new state, never half.
//!
//! The rename is what an API call waits for: from then on the change
//! survives the agent (the page cache holds it). Making it survive a power
//! loss too (fsync of the file and of the directory, several milliseconds
//! on a journalled disk) happens right after on a thread of its own, off
//! the request's path. What a power loss can lose is the last few
//! milliseconds of changes; a reboot loses the network namespaces, veths
//! and pinned maps they were about anyway.

use std::{
    fs::{self, File},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing state {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Loads the state at `path`; `Ok(None)` when there is none yet.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Parse {
            path: path.to_owned(),
            source,
        })
}

/// Replaces the state at `path` with `value`, atomically.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec(value).map_err(|e| err(io::Error::other(e)))?;
    bytes.push(b'\n');
    let mut file = File::create(&tmp).map_err(err)?;
    file.write_all(&bytes).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        // The renamed file is still `file`'s inode.
        if let Err(e) = file.sync_all().and_then(|()| File::open(&dir)?.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "state not synced to disk");
        }
    });
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
        save(&path, &state).unwrap();
        assert_eq!(load::<BTreeMap<String, u32>>(&path).unwrap(), Some(state));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
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
