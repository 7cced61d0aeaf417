//! `log.dir`: the agent's log in `<dir>/patroni.log`, rotated by size as Python's
//! `RotatingFileHandler` rotates Patroni's: once the file passes `file_size` bytes it becomes
//! `patroni.log.1` (older ones shift up to `patroni.log.<file_num>`, the oldest is deleted).
//! The name is Patroni's, so log shippers and logrotate rules written for it keep working.
//! Each log line is written whole, so a rotation never splits one.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};

use crate::config::Log;

/// The log file's name, as Patroni's.
pub const FILE_NAME: &str = "patroni.log";

#[derive(Debug, thiserror::Error)]
#[error("log.dir: cannot write the log file {path}: {source}")]
pub struct LogFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The rotating writer for `dir`, checked writable first (the rotation library would panic on
/// a directory it cannot create).
pub fn open(dir: &Path, log: &Log) -> Result<Mutex<FileRotate<AppendCount>>, LogFileError> {
    let path = dir.join(FILE_NAME);
    let failed = |source| LogFileError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut options = OpenOptions::new();
    options.read(true).create(true).append(true);
    if let Some(mode) = log.mode {
        options.mode(mode);
    }
    // Opened once here so that a permission problem is an error now, not a silent loss later.
    options.open(&path).map_err(failed)?;
    let limit = match log.file_size {
        0 => ContentLimit::None,
        bytes => ContentLimit::BytesSurpassed(usize::try_from(bytes).unwrap_or(usize::MAX)),
    };
    Ok(Mutex::new(FileRotate::new(
        &path,
        AppendCount::new(log.file_num),
        limit,
        Compression::None,
        Some(options),
    )))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn rotates_by_size_keeping_file_num_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log {
            file_size: 100,
            file_num: 2,
            mode: Some(0o640),
            ..Default::default()
        };
        let writer = open(dir.path(), &log).unwrap();
        for i in 0..20 {
            let line = format!("line {i:02} {}\n", "x".repeat(30));
            writer.lock().unwrap().write_all(line.as_bytes()).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["patroni.log", "patroni.log.1", "patroni.log.2"]);
        let current = std::fs::read_to_string(dir.path().join("patroni.log")).unwrap();
        assert!(current.ends_with(&format!("line 19 {}\n", "x".repeat(30))));
        // Lines are never split across files.
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.lines().all(|l| l.len() == 38), "{name}: {text}");
        }
        let mode = std::fs::metadata(dir.path().join("patroni.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_the_file() {
        let Err(err) = open(Path::new("/proc/tribune-no-such-dir"), &Log::default()) else {
            panic!("opened a log file under /proc");
        };
        assert!(err.to_string().contains("patroni.log"), "{err}");
    }
}
