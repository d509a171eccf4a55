//! The Key Generator service (`ma.streaming.key_generator.v1.UniqueKeyGeneratorService`), served
//! on the Stream API's port: GUID string keys, unique non-zero ulong keys (shared counter with the
//! data-format ids, so also unique across both), INVALID_ARGUMENT for KEY_TYPE_UNSPECIFIED
//! (rule 93).

use tonic::{Request, Response, Status};

use super::core::now_ns;
use super::recording::RecordKind;
use super::server::StreamApi;
use key_generator::unique_key_generator_service_server::UniqueKeyGeneratorService;
use open_streaming::key_generator;

#[tonic::async_trait]
impl UniqueKeyGeneratorService for StreamApi {
    async fn generate_unique_key(
        &self,
        request: Request<key_generator::GenerateUniqueKeyRequest>,
    ) -> Result<Response<key_generator::GenerateUniqueKeyResponse>, Status> {
        use key_generator::generate_unique_key_response::Key;
        let req = request.into_inner();
        let mut core = self.shared.lock();
        let key = match key_generator::KeyType::try_from(req.r#type) {
            Ok(key_generator::KeyType::String) => Key::StringKey(uuid::Uuid::new_v4().to_string()),
            Ok(key_generator::KeyType::Ulong) => Key::UlongKey(core.registry.next_id()),
            _ => {
                return Err(Status::invalid_argument(format!(
                    "GenerateUniqueKey: unsupported key type {}",
                    req.r#type
                )));
            }
        };
        let resp = key_generator::GenerateUniqueKeyResponse { key: Some(key) };
        let now = now_ns();
        core.record(RecordKind::GenerateUniqueKeyRequest, now, &req);
        core.record(RecordKind::GenerateUniqueKeyResponse, now, &resp);
        core.flush();
        Ok(Response::new(resp))
    }
}
