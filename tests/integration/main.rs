//! The one integration test binary: real agents, real PostgreSQL, run as the `postgres` user.

mod bench;
mod bench_rest;
mod cluster;
mod config_errors;
mod faults;
mod harness;
mod security;
