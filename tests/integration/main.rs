//! The one integration test binary: real agents, real PostgreSQL, run as the `postgres` user.

mod bench;
mod cluster;
mod config_errors;
mod control;
mod faults;
mod haproxy;
mod harness;
mod members;
mod rest;
