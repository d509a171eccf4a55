//! The Open Streaming protocol types and gRPC stubs, generated at build time from `proto/`.
//!
//! The module tree mirrors the protobuf packages (generated code refers across packages by
//! relative path); [`open_data`], [`api`] and [`key_generator`] are the short names used elsewhere.
pub mod rows;

/// The generated packages, nested as `ma.streaming.<name>.v1`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod ma {
    pub mod streaming {
        pub mod open_data {
            pub mod v1 {
                tonic::include_proto!("ma.streaming.open_data.v1");
            }
        }
        pub mod api {
            pub mod v1 {
                tonic::include_proto!("ma.streaming.api.v1");
            }
        }
        pub mod key_generator {
            pub mod v1 {
                tonic::include_proto!("ma.streaming.key_generator.v1");
            }
        }
    }
}

/// `ma.streaming.api.v1`: the Stream API services.
pub use ma::streaming::api::v1 as api;
/// `ma.streaming.key_generator.v1`: the Key Generator service.
pub use ma::streaming::key_generator::v1 as key_generator;
/// `ma.streaming.open_data.v1`: packets and their contents.
pub use ma::streaming::open_data::v1 as open_data;
