//! Writes tribunectl's manual pages from its command-line definition (clap_mangen):
//! `tribunectl.1` and one `tribunectl-VERB.1` per verb, into the directory given.
//! `scripts/package.sh` runs it for the Debian package; the agent's page is written by hand
//! (`packaging/man/tribune.1`).

use std::path::PathBuf;

use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: mangen OUTPUT_DIRECTORY");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir)?;
    let command = tribune::ctl::Cli::command().version(tribune::VERSION);
    clap_mangen::generate_to(command, &dir)?;
    Ok(())
}
