//! The output folder's lock: one writer per folder, embedded run or NATS sink.
//!
//! A writer removes the `.tmp` parts it finds when it opens a folder (they are what a
//! crash leaves), so a second writer in the same folder would delete the first one's
//! open part. The lock is an advisory `flock` on a file in the folder: the kernel
//! releases it when the process dies, so a crash never leaves a stale lock behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file inside an output folder.
pub const LOCK_FILE: &str = ".capstream-sink.lock";

/// Holds the folder's lock for as long as it lives; opening a sink takes one, so that
/// nothing writes a folder without it.
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    _file: File,
}

impl FolderLock {
    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Takes the output folder's lock, creating the folder, or fails at once naming it.
pub fn lock_output(dir: &Path) -> Result<FolderLock> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(FolderLock {
            dir: dir.to_path_buf(),
            _file: file,
        }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Config(format!(
            "another capstream run or sink is writing to {}; one writer per output folder \
             (wait for it, stop it, or choose another --output)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_fails_and_a_dropped_one_frees_it() {
        let d = tempfile::tempdir().unwrap();
        let a = lock_output(d.path()).unwrap();
        let err = lock_output(d.path()).unwrap_err().to_string();
        assert!(err.contains("another capstream run or sink"), "{err}");
        assert!(err.contains(&d.path().display().to_string()), "{err}");
        drop(a);
        lock_output(d.path()).unwrap();
    }
}
