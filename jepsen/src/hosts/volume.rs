//! Each database host's data directory lives on a small filesystem of the suite's own (a tmpfs
//! with a size limit), so that the `wal-full` nemesis can fill the volume that holds the
//! primary's `pg_wal` and free it again, without touching the machine's disks.
//!
//! A tmpfs loses nothing when a process is killed (only a power cut would), so crash faults keep
//! their meaning. The mount's source names the host (`trc<slot>-n1`), which is how an earlier
//! run's leftovers are found and unmounted.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::command::run;

/// How big each host's volume is: room for the data directory, `wal_keep_size` and the
/// slots' retained WAL (`max_slot_wal_keep_size`), and a data directory set aside by a re-clone.
/// openGauss's fresh data directory alone takes about 750 MB. A tmpfs takes memory only for
/// what it holds.
pub fn size(engine: crate::options::Engine) -> &'static str {
    match engine {
        crate::options::Engine::Postgres => "1536m",
        crate::options::Engine::Opengauss => "4g",
    }
}

/// The file that fills a volume.
const BALLAST: &str = "trc-ballast";

#[derive(Clone, Debug)]
pub struct Volume {
    pub path: PathBuf,
}

impl Volume {
    pub fn mount(
        path: &Path,
        source: &str,
        size: &str,
        uid: u32,
        gid: u32,
    ) -> anyhow::Result<Volume> {
        std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
        let options = format!("size={size},uid={uid},gid={gid},mode=0700");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &options,
                source,
                &path.to_string_lossy(),
            ],
        )?;
        Ok(Volume {
            path: path.to_owned(),
        })
    }

    /// Fills the volume to the last byte. Returns how many bytes the ballast took.
    pub fn fill(&self) -> anyhow::Result<u64> {
        let stat = nix::sys::statvfs::statvfs(&self.path)
            .with_context(|| format!("statvfs {}", self.path.display()))?;
        let free = stat.blocks_available() * stat.fragment_size();
        let ballast = self.path.join(BALLAST);
        let file = std::fs::File::create(&ballast)
            .with_context(|| format!("create {}", ballast.display()))?;
        // tmpfs allocates on fallocate; whatever it refuses at the end, write() takes.
        let _ = nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::empty(), 0, free as i64);
        use std::io::Write as _;
        let mut file = file;
        let chunk = vec![0u8; 64 * 1024];
        while file.write(&chunk).map(|n| n > 0).unwrap_or(false) {}
        Ok(std::fs::metadata(&ballast).map(|m| m.len()).unwrap_or(0))
    }

    pub fn free(&self) -> anyhow::Result<()> {
        let ballast = self.path.join(BALLAST);
        match std::fs::remove_file(&ballast) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", ballast.display()))
            }
            _ => Ok(()),
        }
    }

    pub fn unmount(&self) {
        let _ = run("umount", &["-l", &self.path.to_string_lossy()]);
    }
}

/// Unmounts every tmpfs whose source starts with `prefix` (an earlier run's volumes).
pub fn unmount_leftovers(prefix: &str) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(target)) = (fields.next(), fields.next()) else {
            continue;
        };
        if source.starts_with(prefix) {
            eprintln!("chaos: unmounting {target} left by an earlier run");
            let _ = run("umount", &["-l", target]);
        }
    }
}
