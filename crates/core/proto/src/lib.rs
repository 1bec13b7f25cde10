//! Wire types and service contracts. Every .proto under `proto/` is compiled here; every
//! cross-service call goes through a trait defined here, with an in-process implementation (the
//! single binary, tests) and a tonic gRPC implementation (microservices).
#![warn(missing_docs)]

pub mod chunk_stats;
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

/// The answer of one part of a query, from a querier to the query-frontend
/// (`proto/skald/querier/v1/query_part.proto`).
#[allow(missing_docs, clippy::all)]
pub mod skald_querier_v1 {
    tonic::include_proto!("skald.querier.v1");
}

/// The query-frontend's queue protocol: querier workers pull HTTP requests from the frontend
/// and answer them (`proto/skald/frontend/v1/frontend.proto`).
#[allow(missing_docs, clippy::all)]
pub mod skald_frontend_v1 {
    tonic::include_proto!("skald.frontend.v1");
}

/// OpenTelemetry's OTLP logs and traces protocols (vendored Apache-2.0 opentelemetry-proto
/// v1.11.0): logs for `POST /otlp/v1/logs`, traces for the server's export of request spans.
/// Only the messages are used; the generated gRPC services are neither served nor called.
/// The modules nest like the proto packages because prost's generated paths are relative.
#[allow(missing_docs, clippy::all)]
pub mod otlp {
    pub mod opentelemetry {
        pub mod proto {
            pub mod common {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.common.v1");
                }
            }
            pub mod resource {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.resource.v1");
                }
            }
            pub mod logs {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.logs.v1");
                }
            }
            pub mod trace {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.trace.v1");
                }
            }
            pub mod collector {
                pub mod logs {
                    pub mod v1 {
                        tonic::include_proto!("opentelemetry.proto.collector.logs.v1");
                    }
                }
                pub mod trace {
                    pub mod v1 {
                        tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
                    }
                }
            }
        }
    }
    pub use opentelemetry::proto::collector::logs::v1 as collector;
    /// `ExportTraceServiceRequest`, the body of an OTLP/HTTP `POST /v1/traces`.
    pub use opentelemetry::proto::collector::trace::v1 as trace_collector;
    pub use opentelemetry::proto::common::v1 as common;
    pub use opentelemetry::proto::logs::v1 as logs;
    pub use opentelemetry::proto::resource::v1 as resource;
    pub use opentelemetry::proto::trace::v1 as trace;
}
