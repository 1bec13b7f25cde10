//! Compiles every .proto under `proto/` with the pure-Rust `protox` compiler (no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build-script binary reused from another checkout (a shared target
    // directory) must still look at this checkout's protos.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir).join("../../../proto");
    let files = [
        root.join("third-party/loki/push.proto"),
        root.join("skald/ingester/v1/ingester.proto"),
        root.join("skald/querier/v1/query_part.proto"),
        root.join("skald/frontend/v1/frontend.proto"),
        // OTLP logs (vendored opentelemetry-proto; messages only are used, see the README).
        root.join("third-party/opentelemetry/proto/collector/logs/v1/logs_service.proto"),
        // OTLP traces, for the server's request spans (`tracing` block)
        root.join("third-party/opentelemetry/proto/collector/trace/v1/trace_service.proto"),
    ];
    // the whole directory: the files above import others (`trace.proto`, `common.proto`, ...)
    println!("cargo:rerun-if-changed={}", root.display());
    let includes = [root.join("third-party"), root.clone()];
    let fds = protox::compile(&files, &includes)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // request and response bodies travel as `bytes::Bytes`, shared without copies
        .bytes(".skald.frontend.v1")
        .compile_fds(fds)?;
    Ok(())
}
