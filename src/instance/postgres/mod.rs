//! The PostgreSQL adapter (being written): the pure pieces first.

pub mod commands;
pub mod controldata;
pub mod files;
pub mod gucs;
pub mod roles;
pub mod settings;
pub mod slots;
pub mod status;

pub use settings::PostgresSettings;
