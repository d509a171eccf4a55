//! The gRPC face of the test Stream API: tonic implementations of SessionManagementService,
//! DataFormatManagerService, PacketWriterService and the Key Generator's
//! UniqueKeyGeneratorService, answering as the real v1.3 server does (§10 A2–A4).
//!
//! Handlers are thin: lock [`Shared`], record the request, apply it to the registry/checker,
//! record the response, report violations, flush. The only behaviour change a violation can cause
//! is strict mode's INVALID_ARGUMENT; otherwise answers match the real server's.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::conformance::{Event, FormatKind, Violation};
use super::core::{Shared, now_ns};
use super::lint::{self, Findings};
use super::recording::RecordKind;
use api::data_format_manager_service_server::DataFormatManagerService;
use api::packet_writer_service_server::PacketWriterService;
use api::session_management_service_server::SessionManagementService;
use open_streaming::api;

/// Largest request the real server accepts (ASP.NET Core's default MaxReceiveMessageSize).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The transport's own limit, above [`MAX_REQUEST_BYTES`] so an oversized request reaches the
/// handler, is recorded as B10 and answered RESOURCE_EXHAUSTED like the real server.
pub const TRANSPORT_LIMIT_BYTES: usize = 16 * 1024 * 1024;

type Notifications<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// One server's services; cheap to clone (all state is in [`Shared`]).
#[derive(Debug, Clone)]
pub struct StreamApi {
    /// The state all services share.
    pub(super) shared: Arc<Shared>,
    /// Flips to true on shutdown so open client streams end and graceful shutdown completes.
    shutdown: watch::Receiver<bool>,
}

impl StreamApi {
    /// Services over `shared`, stopping open streams when `shutdown` becomes true.
    pub fn new(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) -> Self {
        StreamApi { shared, shutdown }
    }

    /// RESOURCE_EXHAUSTED (and a B10 violation) for a request above 4 MiB.
    fn check_size(&self, method: &str, message: &impl prost::Message) -> Result<(), Status> {
        let bytes = message.encoded_len();
        if bytes <= MAX_REQUEST_BYTES {
            return Ok(());
        }
        let mut core = self.shared.lock();
        let now = now_ns();
        let found = core
            .checker
            .handle(now, Event::RequestTooLarge { method, bytes });
        core.report(now, found);
        core.flush();
        Err(Status::resource_exhausted(format!(
            "{method}: request of {bytes} bytes exceeds {MAX_REQUEST_BYTES}"
        )))
    }

    /// In strict mode, INVALID_ARGUMENT naming the first error among `found`.
    fn verdict(&self, any_error: bool, found: &[Violation]) -> Result<(), Status> {
        if !(self.shared.strict && any_error) {
            return Ok(());
        }
        let first = found
            .iter()
            .find(|v| v.severity == super::conformance::Severity::Error);
        Err(Status::invalid_argument(
            first.map_or_else(String::new, ToString::to_string),
        ))
    }

    /// Records, applies and checks one batch of packets; strict-mode verdict over the batch.
    fn write(&self, details: &[api::DataPacketDetails]) -> Result<(), Status> {
        let mut core = self.shared.lock();
        let now = now_ns();
        let mut found = Vec::new();
        for d in details {
            core.record(RecordKind::DataPacketDetails, now, d);
            found.extend(core.apply_packet(now, d));
        }
        let any_error = core.report(now, found.clone());
        core.flush();
        self.verdict(any_error, &found)
    }

    fn info(&self, req: &api::WriteInfoPacketRequest) {
        let mut core = self.shared.lock();
        let now = now_ns();
        core.record(RecordKind::WriteInfoPacketRequest, now, req);
        let found = core.checker.handle(now, Event::InfoPacketWritten(req));
        core.report(now, found);
        core.flush();
    }

    /// Records a request/response pair of a read-only or simple RPC.
    fn record_pair(
        &self,
        kinds: (RecordKind, RecordKind),
        req: &impl prost::Message,
        resp: &impl prost::Message,
    ) {
        let mut core = self.shared.lock();
        let now = now_ns();
        core.record(kinds.0, now, req);
        core.record(kinds.1, now, resp);
        core.flush();
    }

    fn format_id(
        &self,
        kinds: (RecordKind, RecordKind),
        req: &impl prost::Message,
        ds: &str,
        kind: FormatKind,
        ids: &[String],
    ) -> u64 {
        let mut core = self.shared.lock();
        let now = now_ns();
        core.record(kinds.0, now, req);
        let id = core.apply_format(now, ds, kind, ids, None);
        let mut f = Findings::new("", "");
        lint::check_names(ds, None, &mut f);
        core.report(now, f.out);
        let id_message = api::GetParameterDataFormatIdResponse {
            data_format_identifier: id,
        };
        core.record(kinds.1, now, &id_message);
        core.flush();
        id
    }

    /// Update*/AddAssociate: record, apply (`false` = unknown key), record the answer.
    fn update(
        &self,
        kinds: (RecordKind, RecordKind),
        req: &impl prost::Message,
        apply: impl FnOnce(&mut super::registry::Registry) -> bool,
    ) -> bool {
        let mut core = self.shared.lock();
        let now = now_ns();
        core.record(kinds.0, now, req);
        let success = apply(&mut core.registry);
        // All three responses are `{ success }` at field 1, so one message type encodes them.
        core.record(
            kinds.1,
            now,
            &api::UpdateSessionIdentifierResponse { success },
        );
        core.flush();
        success
    }
}

#[tonic::async_trait]
impl SessionManagementService for StreamApi {
    async fn create_session(
        &self,
        request: Request<api::CreateSessionRequest>,
    ) -> Result<Response<api::CreateSessionResponse>, Status> {
        let req = request.into_inner();
        let mut core = self.shared.lock();
        let now = now_ns();
        core.record(RecordKind::CreateSessionRequest, now, &req);
        if self.shared.strict {
            let mut f = Findings::new("", "");
            lint::check_create_session(&req, &mut f);
            let any_error = core.report(now, f.out.clone());
            core.flush();
            self.verdict(any_error, &f.out)?;
        }
        let (response, found) = core.apply_create(now, &req, uuid::Uuid::new_v4().to_string());
        core.record(RecordKind::CreateSessionResponse, now, &response);
        if !self.shared.strict {
            core.report(now, found);
        }
        let note = api::GetSessionStartNotificationResponse {
            session_key: response.session_key.clone(),
            data_source: req.data_source.clone(),
        };
        notify(&mut core.start_subs, &req.data_source, note);
        core.flush();
        Ok(Response::new(response))
    }

    async fn end_session(
        &self,
        request: Request<api::EndSessionRequest>,
    ) -> Result<Response<api::EndSessionResponse>, Status> {
        let req = request.into_inner();
        let mut core = self.shared.lock();
        let now = now_ns();
        core.record(RecordKind::EndSessionRequest, now, &req);
        let (response, found) = core.apply_end(now, &req);
        core.record(RecordKind::EndSessionResponse, now, &response);
        core.report(now, found);
        if let Some(end) = response.end_session.as_ref() {
            let note = api::GetSessionStopNotificationResponse {
                session_key: req.session_key.clone(),
                data_source: end.data_source.clone(),
            };
            let ds = end.data_source.clone();
            notify(&mut core.stop_subs, &ds, note);
        }
        core.flush();
        Ok(Response::new(response))
    }

    async fn get_current_sessions(
        &self,
        request: Request<api::GetCurrentSessionsRequest>,
    ) -> Result<Response<api::GetCurrentSessionsResponse>, Status> {
        let req = request.into_inner();
        let resp = self
            .shared
            .lock()
            .registry
            .current_sessions(&req.data_source);
        self.record_pair(
            (
                RecordKind::GetCurrentSessionsRequest,
                RecordKind::GetCurrentSessionsResponse,
            ),
            &req,
            &resp,
        );
        Ok(Response::new(resp))
    }

    async fn get_session_info(
        &self,
        request: Request<api::GetSessionInfoRequest>,
    ) -> Result<Response<api::GetSessionInfoResponse>, Status> {
        let req = request.into_inner();
        let resp = self.shared.lock().registry.session_info(&req.session_key);
        self.record_pair(
            (
                RecordKind::GetSessionInfoRequest,
                RecordKind::GetSessionInfoResponse,
            ),
            &req,
            &resp,
        );
        Ok(Response::new(resp))
    }

    type GetSessionStartNotificationStream =
        Notifications<api::GetSessionStartNotificationResponse>;

    async fn get_session_start_notification(
        &self,
        request: Request<api::GetSessionStartNotificationRequest>,
    ) -> Result<Response<Self::GetSessionStartNotificationStream>, Status> {
        let (tx, rx) = mpsc::channel(64);
        self.shared
            .lock()
            .start_subs
            .push((request.into_inner().data_source, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type GetSessionStopNotificationStream = Notifications<api::GetSessionStopNotificationResponse>;

    async fn get_session_stop_notification(
        &self,
        request: Request<api::GetSessionStopNotificationRequest>,
    ) -> Result<Response<Self::GetSessionStopNotificationStream>, Status> {
        let (tx, rx) = mpsc::channel(64);
        self.shared
            .lock()
            .stop_subs
            .push((request.into_inner().data_source, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_session_identifier(
        &self,
        request: Request<api::UpdateSessionIdentifierRequest>,
    ) -> Result<Response<api::UpdateSessionIdentifierResponse>, Status> {
        let req = request.into_inner();
        let kinds = (
            RecordKind::UpdateSessionIdentifierRequest,
            RecordKind::UpdateSessionIdentifierResponse,
        );
        let success = self.update(kinds, &req, |r| r.update_identifier(&req));
        Ok(Response::new(api::UpdateSessionIdentifierResponse {
            success,
        }))
    }

    async fn add_associate_session(
        &self,
        request: Request<api::AddAssociateSessionRequest>,
    ) -> Result<Response<api::AddAssociateSessionResponse>, Status> {
        let req = request.into_inner();
        let kinds = (
            RecordKind::AddAssociateSessionRequest,
            RecordKind::AddAssociateSessionResponse,
        );
        let success = self.update(kinds, &req, |r| r.add_associate(&req));
        Ok(Response::new(api::AddAssociateSessionResponse { success }))
    }

    async fn update_session_details(
        &self,
        request: Request<api::UpdateSessionDetailsRequest>,
    ) -> Result<Response<api::UpdateSessionDetailsResponse>, Status> {
        let req = request.into_inner();
        let kinds = (
            RecordKind::UpdateSessionDetailsRequest,
            RecordKind::UpdateSessionDetailsResponse,
        );
        let success = self.update(kinds, &req, |r| r.update_details(&req));
        Ok(Response::new(api::UpdateSessionDetailsResponse { success }))
    }
}

/// Sends a notification to the data source's subscribers, forgetting those that went away.
fn notify<T: Clone>(subs: &mut Vec<super::core::Subscriber<T>>, data_source: &str, note: T) {
    subs.retain(|(_, tx)| !tx.is_closed());
    for (_, tx) in subs.iter().filter(|(ds, _)| ds == data_source) {
        // A subscriber more than 64 notifications behind loses the newest; it is a test server.
        let _ = tx.try_send(Ok(note.clone()));
    }
}

#[tonic::async_trait]
impl DataFormatManagerService for StreamApi {
    async fn get_parameter_data_format_id(
        &self,
        request: Request<api::GetParameterDataFormatIdRequest>,
    ) -> Result<Response<api::GetParameterDataFormatIdResponse>, Status> {
        let req = request.into_inner();
        let kinds = (
            RecordKind::GetParameterDataFormatIdRequest,
            RecordKind::GetParameterDataFormatIdResponse,
        );
        let id = self.format_id(
            kinds,
            &req,
            &req.data_source,
            FormatKind::Parameter,
            &req.parameters,
        );
        Ok(Response::new(api::GetParameterDataFormatIdResponse {
            data_format_identifier: id,
        }))
    }

    async fn get_event_data_format_id(
        &self,
        request: Request<api::GetEventDataFormatIdRequest>,
    ) -> Result<Response<api::GetEventDataFormatIdResponse>, Status> {
        let req = request.into_inner();
        let kinds = (
            RecordKind::GetEventDataFormatIdRequest,
            RecordKind::GetEventDataFormatIdResponse,
        );
        let id = self.format_id(
            kinds,
            &req,
            &req.data_source,
            FormatKind::Event,
            std::slice::from_ref(&req.event),
        );
        Ok(Response::new(api::GetEventDataFormatIdResponse {
            data_format_identifier: id,
        }))
    }

    async fn get_parameters_list(
        &self,
        request: Request<api::GetParametersListRequest>,
    ) -> Result<Response<api::GetParametersListResponse>, Status> {
        let req = request.into_inner();
        let parameters = self
            .shared
            .lock()
            .registry
            .format(
                &req.data_source,
                FormatKind::Parameter,
                req.data_format_identifier,
            )
            .map(<[String]>::to_vec);
        let resp = api::GetParametersListResponse {
            parameters: parameters.unwrap_or_default(),
        };
        self.record_pair(
            (
                RecordKind::GetParametersListRequest,
                RecordKind::GetParametersListResponse,
            ),
            &req,
            &resp,
        );
        Ok(Response::new(resp))
    }

    async fn get_event(
        &self,
        request: Request<api::GetEventRequest>,
    ) -> Result<Response<api::GetEventResponse>, Status> {
        let req = request.into_inner();
        let event = self
            .shared
            .lock()
            .registry
            .format(
                &req.data_source,
                FormatKind::Event,
                req.data_format_identifier,
            )
            .and_then(|ids| ids.first().cloned());
        let resp = api::GetEventResponse {
            event: event.unwrap_or_default(),
        };
        self.record_pair(
            (RecordKind::GetEventRequest, RecordKind::GetEventResponse),
            &req,
            &resp,
        );
        Ok(Response::new(resp))
    }
}

#[tonic::async_trait]
impl PacketWriterService for StreamApi {
    async fn write_data_packet(
        &self,
        request: Request<api::WriteDataPacketRequest>,
    ) -> Result<Response<api::WriteDataPacketResponse>, Status> {
        let req = request.into_inner();
        self.check_size("WriteDataPacket", &req)?;
        // The real server throws on a missing detail (gRPC UNKNOWN); record it as B1 here.
        let detail = req.detail.unwrap_or_default();
        self.write(std::slice::from_ref(&detail))?;
        if detail.message.is_none() {
            return Err(Status::unknown(
                "WriteDataPacket: detail or detail.message missing",
            ));
        }
        Ok(Response::new(api::WriteDataPacketResponse {}))
    }

    async fn write_data_packets(
        &self,
        request: Request<Streaming<api::WriteDataPacketsRequest>>,
    ) -> Result<Response<api::WriteDataPacketsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut shutdown = self.shutdown.clone();
        while let Some(message) = next_until_shutdown(&mut stream, &mut shutdown).await? {
            self.check_size("WriteDataPackets", &message)?;
            self.write(&message.details)?;
        }
        Ok(Response::new(api::WriteDataPacketsResponse {}))
    }

    async fn write_info_packet(
        &self,
        request: Request<api::WriteInfoPacketRequest>,
    ) -> Result<Response<api::WriteInfoPacketResponse>, Status> {
        let req = request.into_inner();
        self.check_size("WriteInfoPacket", &req)?;
        self.info(&req);
        Ok(Response::new(api::WriteInfoPacketResponse {}))
    }

    async fn write_info_packets(
        &self,
        request: Request<Streaming<api::WriteInfoPacketsRequest>>,
    ) -> Result<Response<api::WriteInfoPacketsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut shutdown = self.shutdown.clone();
        while let Some(message) = next_until_shutdown(&mut stream, &mut shutdown).await? {
            self.check_size("WriteInfoPackets", &message)?;
            self.info(&api::WriteInfoPacketRequest {
                message: message.message,
                r#type: message.r#type,
            });
        }
        Ok(Response::new(api::WriteInfoPacketsResponse {}))
    }
}

/// The next message of a client stream, or `None` once the client half-closes or the server
/// shuts down (so a long-lived write stream never holds a shutdown up).
async fn next_until_shutdown<T>(
    stream: &mut Streaming<T>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<T>, Status> {
    tokio::select! {
        message = stream.message() => message,
        _ = shutdown.wait_for(|stop| *stop) => Ok(None),
    }
}
