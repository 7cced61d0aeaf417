//! Tribune's configuration (being written): the dynamic configuration parser first.

mod dynamic;
mod error;
mod value;

pub use dynamic::{
    DEFAULT_LOOP_WAIT, DEFAULT_MAXIMUM_LAG_ON_FAILOVER, DEFAULT_PRIMARY_START_TIMEOUT,
    DEFAULT_RETRY_TIMEOUT, DEFAULT_SYNCHRONOUS_NODE_COUNT, DEFAULT_TTL, DynamicConfig,
    DynamicPostgresql, SynchronousMode,
};
pub use error::ConfigError;
