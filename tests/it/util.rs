//! Test helpers: start a test Stream API on 127.0.0.1:0, connect the generated clients, and a
//! hand-written producer that builds official packets.

use std::path::PathBuf;

use open_streaming::{api, key_generator, open_data};
use prost::Message;
use stream_api::{self, ServerHandle, ServerOptions};
use tonic::Status;
use tonic::transport::Channel;

use api::data_format_manager_service_client::DataFormatManagerServiceClient;
use api::packet_writer_service_client::PacketWriterServiceClient;
use api::session_management_service_client::SessionManagementServiceClient;
use key_generator::unique_key_generator_service_client::UniqueKeyGeneratorServiceClient;

/// A plausible epoch-ns start time (2023-11-14T22:13:20Z): in the past on any sane test clock.
pub const T0: u64 = 1_700_000_000_000_000_000;
/// 100 Hz in nanoseconds.
pub const INTERVAL: u32 = 10_000_000;
/// The data source used by the tests.
pub const DS: &str = "car1";
/// The data stream used by the tests.
pub const STREAM: &str = "chassis";
/// Parameters defined by [`config`].
pub const SPEED: &str = "Speed:Car";
/// Second parameter defined by [`config`].
pub const RPM: &str = "Rpm:Car";

/// Generated clients on one channel.
#[derive(Debug, Clone)]
pub struct Clients {
    pub session: SessionManagementServiceClient<Channel>,
    pub formats: DataFormatManagerServiceClient<Channel>,
    pub writer: PacketWriterServiceClient<Channel>,
    pub keys: UniqueKeyGeneratorServiceClient<Channel>,
}

/// Starts a server and connects clients to it.
pub async fn start(strict: bool, record: Option<PathBuf>) -> (ServerHandle, Clients) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = stream_api::spawn(listener, ServerOptions { strict, record })
        .await
        .expect("spawn");
    let clients = connect(server.local_addr()).await;
    (server, clients)
}

/// Clients on one channel to a server at `addr`.
pub async fn connect(addr: std::net::SocketAddr) -> Clients {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    Clients {
        session: SessionManagementServiceClient::new(channel.clone()),
        formats: DataFormatManagerServiceClient::new(channel.clone()),
        writer: PacketWriterServiceClient::new(channel.clone()),
        keys: UniqueKeyGeneratorServiceClient::new(channel),
    }
}

/// A conforming CreateSession request.
pub fn create_request() -> api::CreateSessionRequest {
    api::CreateSessionRequest {
        data_source: DS.into(),
        r#type: "Session".into(),
        version: 1,
        utc_offset: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        identifier: "Test run".into(),
        ..Default::default()
    }
}

/// A ParameterDefinition that passes B4.
pub fn param_def(identifier: &str) -> open_data::ParameterDefinition {
    open_data::ParameterDefinition {
        identifier: identifier.into(),
        name: identifier.split(':').next().unwrap_or_default().into(),
        application_name: "Car".into(),
        units: "u".into(),
        data_type: open_data::DataType::Float64 as i32,
        format_string: "%6.3f".into(),
        min_value: 0.0,
        max_value: 1000.0,
        frequencies: vec![100.0],
        includes_row_data: true,
        ..Default::default()
    }
}

/// A configuration with one group ("Car") and `params`.
pub fn config(config_id: &str, params: &[&str]) -> open_data::ConfigurationPacket {
    open_data::ConfigurationPacket {
        config_id: config_id.into(),
        parameter_definitions: params.iter().map(|p| param_def(p)).collect(),
        group_definitions: vec![open_data::GroupDefinition {
            identifier: "Car".into(),
            name: "Car".into(),
            application_name: "Car".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A double column of VALID samples.
pub fn column(values: &[f64]) -> open_data::SampleColumn {
    open_data::SampleColumn {
        list: Some(open_data::sample_column::List::DoubleSamples(doubles(
            values,
        ))),
    }
}

/// A double row of VALID samples.
pub fn row(values: &[f64]) -> open_data::SampleRow {
    open_data::SampleRow {
        list: Some(open_data::sample_row::List::DoubleSamples(doubles(values))),
    }
}

fn doubles(values: &[f64]) -> open_data::DoubleSampleList {
    let samples = values
        .iter()
        .map(|v| open_data::DoubleSample {
            value: *v,
            status: open_data::DataStatus::Valid as i32,
        })
        .collect();
    open_data::DoubleSampleList { samples }
}

/// A data format by id.
pub fn by_id(id: u64) -> Option<open_data::SampleDataFormat> {
    Some(open_data::SampleDataFormat {
        format: Some(open_data::sample_data_format::Format::DataFormatIdentifier(
            id,
        )),
    })
}

/// A periodic packet of one parameter format.
pub fn periodic(id: u64, start: u64, values: &[f64]) -> open_data::PeriodicDataPacket {
    open_data::PeriodicDataPacket {
        data_format: by_id(id),
        start_time: start,
        interval: INTERVAL,
        columns: vec![column(values)],
    }
}

/// A Lap Trigger marker.
pub fn lap(timestamp: u64, lap: i64) -> open_data::MarkerPacket {
    open_data::MarkerPacket {
        timestamp,
        label: format!("Lap {lap}"),
        r#type: "Lap Trigger".into(),
        source: "0".into(),
        value: lap,
        ..Default::default()
    }
}

/// A producer of one session: numbers packets and fills both session keys.
#[derive(Debug)]
pub struct Producer {
    pub clients: Clients,
    pub key: String,
    pub next_id: u64,
    /// Data-format id of `[SPEED]` once [`Producer::prelude`] ran.
    pub speed_fid: u64,
    /// Data-format id of `[SPEED, RPM]`.
    pub both_fid: u64,
}

impl Producer {
    /// Creates a session with `request`.
    pub async fn create(clients: Clients, request: api::CreateSessionRequest) -> Producer {
        let mut c = clients.clone();
        let resp = c
            .session
            .create_session(request)
            .await
            .expect("create")
            .into_inner();
        assert!(resp.success);
        Producer {
            clients,
            key: resp.session_key,
            next_id: 1,
            speed_fid: 0,
            both_fid: 0,
        }
    }

    /// The details of a packet of type `ty` on `stream`.
    pub fn details(
        &mut self,
        stream: &str,
        ty: &str,
        essential: bool,
        content: &impl Message,
    ) -> api::DataPacketDetails {
        let id = self.next_id;
        self.next_id += 1;
        let packet = open_data::Packet {
            r#type: ty.into(),
            session_key: self.key.clone(),
            is_essential: essential,
            content: content.encode_to_vec().into(),
            id,
        };
        api::DataPacketDetails {
            message: Some(packet),
            data_source: DS.into(),
            stream: stream.into(),
            session_key: self.key.clone(),
        }
    }

    /// Writes one packet with WriteDataPacket.
    pub async fn write(
        &mut self,
        stream: &str,
        ty: &str,
        essential: bool,
        content: &impl Message,
    ) -> Result<(), Status> {
        let detail = self.details(stream, ty, essential, content);
        self.write_details(detail).await
    }

    /// Writes prepared details with WriteDataPacket.
    pub async fn write_details(&mut self, detail: api::DataPacketDetails) -> Result<(), Status> {
        let request = api::WriteDataPacketRequest {
            detail: Some(detail),
        };
        self.clients
            .writer
            .write_data_packet(request)
            .await
            .map(|_| ())
    }

    /// NewSession and Configuration on `""` and [`STREAM`], then the data-format ids.
    pub async fn prelude(&mut self) {
        let new_session = open_data::NewSessionPacket {
            data_source: DS.into(),
            ..Default::default()
        };
        let cfg = config(&format!("cfg-{}", self.key), &[SPEED, RPM]);
        for stream in ["", STREAM] {
            self.write(stream, "NewSession", false, &new_session)
                .await
                .expect("new session");
            self.write(stream, "Configuration", true, &cfg)
                .await
                .expect("config");
        }
        self.speed_fid = self.format_id(&[SPEED]).await;
        self.both_fid = self.format_id(&[SPEED, RPM]).await;
    }

    /// GetParameterDataFormatId for `params`.
    pub async fn format_id(&mut self, params: &[&str]) -> u64 {
        let request = api::GetParameterDataFormatIdRequest {
            data_source: DS.into(),
            parameters: params.iter().map(|p| p.to_string()).collect(),
        };
        self.clients
            .formats
            .get_parameter_data_format_id(request)
            .await
            .expect("format id")
            .into_inner()
            .data_format_identifier
    }

    /// EndOfSession on `""` and [`STREAM`], then EndSession.
    pub async fn finish(&mut self) -> api::EndSessionResponse {
        let eos = open_data::EndOfSessionPacket {
            data_source: DS.into(),
            ..Default::default()
        };
        for stream in ["", STREAM] {
            self.write(stream, "EndOfSession", false, &eos)
                .await
                .expect("end of session");
        }
        self.end_session().await
    }

    /// EndSession only.
    pub async fn end_session(&mut self) -> api::EndSessionResponse {
        let request = api::EndSessionRequest {
            data_source: DS.into(),
            session_key: self.key.clone(),
            ..Default::default()
        };
        self.clients
            .session
            .end_session(request)
            .await
            .expect("end session")
            .into_inner()
    }
}
