//! The openGauss adapter's pure pieces: `settings` (what the caller gives, openGauss's
//! checks), `term` (generation to term), `commands` (tool command lines), `files`
//! (`postgresql.conf` block, `pg_hba.conf`), `replconninfo` (channels), `syncnames`
//! (`synchronous_standby_names` rules), `status` (the per-tick query), `hastate` (openGauss's
//! role and state words), `gs_ctl_output` (what gs_ctl prints), `roles`, `slots`, `fence` (SQL
//! plans), `detect` (engine selection). The adapter that runs them comes next.

pub mod commands;
pub mod detect;
pub mod fence;
pub mod files;
pub mod gs_ctl_output;
pub mod hastate;
pub mod replconninfo;
pub mod roles;
pub mod settings;
pub mod slots;
pub mod status;
pub mod syncnames;
pub mod term;
