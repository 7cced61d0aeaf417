//! The one integration test binary: real agents, real PostgreSQL, run as the `postgres` user
//! (and real openGauss, where `TRIBUNE_OPENGAUSS_BIN` names its programs; a major-version
//! upgrade where `TRIBUNE_PG_UPGRADE_BIN` names a newer PostgreSQL).

mod agent_tls;
mod backup;
mod bench;
mod bench_rest;
mod bench_upgrade;
mod cluster;
mod config_errors;
mod control;
mod ctl;
mod faults;
mod fleet;
mod haproxy;
mod harness;
mod heal;
mod members;
mod opengauss;
mod prometheus;
mod rest;
mod scripts;
mod security;
mod site;
mod slots;
mod standby;
mod systemd;
mod upgrade;
