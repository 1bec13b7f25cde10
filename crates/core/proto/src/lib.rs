//! Wire types and service contracts. Every .proto under `proto/` is compiled here; every
//! cross-service call goes through a trait defined here, with an in-process implementation (the
//! single binary, tests) and a tonic gRPC implementation (microservices).

pub mod error;
pub mod ingester;

pub use error::{ErrorCode, ServiceError};
pub use prost;
pub use tonic;

/// Loki's push protocol (`logproto` package, vendored Apache-2.0 `push.proto`).
#[allow(missing_docs, clippy::all)]
pub mod logproto {
    tonic::include_proto!("logproto");
}

/// Skald's internal ingester protocol.
#[allow(missing_docs, clippy::all)]
pub mod skald_ingester_v1 {
    tonic::include_proto!("skald.ingester.v1");
}
