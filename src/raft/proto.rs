//! The gRPC code generated from `proto/tribune.proto` by `build.rs`. Not edited by hand.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("tribune");
