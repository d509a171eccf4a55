//! Build script: compiles the `.proto` files beside it into Rust with protox (a pure-Rust protobuf compiler), so a
//! fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "ma/streaming/open_data/v1/open_data.proto",
        "ma/streaming/api/v1/api.proto",
        "ma/streaming/key_generator/v1/key_generator.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        // A packet's content is the bulk of every request: as `Bytes` it is shared, not
        // copied, from the spool record into the request and from the server's receive
        // buffer into the decoded packet (`docs/performance.md`).
        .bytes(".ma.streaming.open_data.v1.Packet.content")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
