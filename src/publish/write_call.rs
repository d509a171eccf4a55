//! The `WriteDataPacket` call, its request sent from the packet's own buffer. tonic's codec
//! encodes every request into a buffer of its own, which copied each packet's content (up to
//! `batch.max_packet_bytes`) once more on its way out, into freshly allocated memory
//! (`docs/performance.md`). Here the request goes out in pieces: every field but the content,
//! then the content itself (the spool record's payload, shared, not copied). The content is
//! written last so that it ends the request, and the HTTP/2 DATA frame
//! that carries it ends the stream: no frame follows it, so the server is woken once less per
//! packet. Protobuf parsers take fields in any order, so this is prost's encoding of the
//! request with its fields reordered (tests decode it, and check the order). The answer is
//! read by tonic's own response decoder, so statuses, trailers and transport errors mean what
//! they mean for every other call.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tonic::codec::Streaming;
use tonic::codegen::{Service, http};
use tonic::transport::Channel;
use tonic::{Code, Status};

use open_streaming::api::{WriteDataPacketRequest, WriteDataPacketResponse};

/// The method's path, as the generated client names it.
const PATH: &str = "/ma.streaming.api.v1.PacketWriterService/WriteDataPacket";
/// `DataPacketDetails.message` and `WriteDataPacketRequest.detail` are field 1 of theirs;
/// `Packet.content` is field 4.
const DETAIL_FIELD: u32 = 1;
const MESSAGE_FIELD: u32 = 1;
const CONTENT_FIELD: u32 = 4;

/// The request as the pieces that go out: the gRPC message prefix and every field but the
/// content, then the content.
#[derive(Debug)]
pub(super) struct RequestPieces {
    pieces: [Bytes; 2],
}

impl RequestPieces {
    /// The pieces of `request`, whose content is taken, not copied. `None` without a packet.
    pub(super) fn new(request: WriteDataPacketRequest) -> Option<Self> {
        let mut details = request.detail?;
        let mut packet = details.message.take()?;
        let content = std::mem::take(&mut packet.content);
        let content_len = content.len();
        // The details' fields but the packet (2–4), then the packet's but the content (1–3
        // and 5), then the content (4).
        let details_fields = details.encode_to_vec();
        let packet_fields = packet.encode_to_vec();
        let content_field = if content_len == 0 {
            0
        } else {
            key_len(CONTENT_FIELD) + encoded_len_varint(content_len as u64) + content_len
        };
        let packet_len = packet_fields.len() + content_field;
        let details_len = details_fields.len()
            + key_len(MESSAGE_FIELD)
            + encoded_len_varint(packet_len as u64)
            + packet_len;
        let request_len =
            key_len(DETAIL_FIELD) + encoded_len_varint(details_len as u64) + details_len;

        let mut head = BytesMut::with_capacity(5 + 30 + details_fields.len() + packet_fields.len());
        head.put_u8(0);
        head.put_u32(u32::try_from(request_len).unwrap_or(u32::MAX));
        encode_key(DETAIL_FIELD, WireType::LengthDelimited, &mut head);
        encode_varint(details_len as u64, &mut head);
        head.put_slice(&details_fields);
        encode_key(MESSAGE_FIELD, WireType::LengthDelimited, &mut head);
        encode_varint(packet_len as u64, &mut head);
        head.put_slice(&packet_fields);
        if content_len != 0 {
            encode_key(CONTENT_FIELD, WireType::LengthDelimited, &mut head);
            encode_varint(content_len as u64, &mut head);
        }
        Some(Self {
            pieces: [head.freeze(), content],
        })
    }

    /// Bytes of the encoded request, without the 5-byte gRPC message prefix.
    pub(super) fn request_len(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum::<usize>() - 5
    }

    #[cfg(test)]
    fn concatenated(&self) -> Vec<u8> {
        self.pieces.concat()
    }
}

/// Makes the call on `channel` with `timeout` (sent as `grpc-timeout`, and enforced by the
/// channel as tonic's generated client would); refuses, as tonic does, a request over
/// `max_bytes`. The server's OK is `Ok(())`.
pub(super) async fn write_data_packet(
    mut channel: Channel,
    request: WriteDataPacketRequest,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(), Status> {
    let pieces = RequestPieces::new(request)
        .ok_or_else(|| Status::internal("WriteDataPacket without a packet"))?;
    if pieces.request_len() > max_bytes {
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {} bytes, the limit is: {max_bytes} bytes",
            pieces.request_len()
        )));
    }
    let body = tonic::body::Body::new(PiecesBody::new(pieces));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .version(http::Version::HTTP_2)
        .uri(PATH)
        .header(http::header::TE, "trailers")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("grpc-timeout", grpc_timeout(timeout))
        .body(body)
        .map_err(|error| Status::internal(error.to_string()))?;
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|error| Status::unknown(format!("Service was not ready: {error}")))?;
    let response = channel
        .call(request)
        .await
        .map_err(|error| Status::from_error(Box::new(error)))?;
    // As tonic's client reads a unary answer: a trailers-only answer has no message (an error,
    // or OK without the message a unary call owes), else the message and then the trailers,
    // whose status (or the HTTP status) decides.
    if let Some(status) = Status::from_header_map(response.headers()) {
        return Err(if status.code() == Code::Ok {
            Status::internal("Missing response message.")
        } else {
            status
        });
    }
    let status_code = response.status();
    let decoder =
        tonic_prost::ProstCodec::<WriteDataPacketRequest, WriteDataPacketResponse>::raw_decoder(
            tonic::codec::BufferSettings::default(),
        );
    let mut answer =
        Streaming::new_response(decoder, response.into_body(), status_code, None, None);
    answer
        .message()
        .await?
        .ok_or_else(|| Status::internal("Missing response message."))?;
    answer.trailers().await?;
    Ok(())
}

/// The request's pieces as an HTTP body that knows its length and says it has ended as soon
/// as its last piece is taken: hyper then sends that piece's DATA frame with END_STREAM, not
/// an empty frame after it.
struct PiecesBody {
    pieces: std::array::IntoIter<Bytes, 2>,
    remaining: u64,
}

impl PiecesBody {
    fn new(pieces: RequestPieces) -> Self {
        let remaining = pieces.pieces.iter().map(|piece| piece.len() as u64).sum();
        Self {
            pieces: pieces.pieces.into_iter(),
            remaining,
        }
    }
}

impl Body for PiecesBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let piece = this.pieces.by_ref().find(|piece| !piece.is_empty());
        if let Some(piece) = &piece {
            this.remaining -= piece.len() as u64;
        }
        Poll::Ready(piece.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// `timeout` as a `grpc-timeout` value: at most eight digits, in the finest unit that fits.
fn grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let micros = timeout.as_micros();
    if micros <= MAX {
        return format!("{micros}u");
    }
    let millis = timeout.as_millis();
    if millis <= MAX {
        return format!("{millis}m");
    }
    format!("{}S", timeout.as_secs().min(MAX as u64))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use open_streaming::api::DataPacketDetails;
    use open_streaming::open_data::Packet;

    fn request(
        content: Vec<u8>,
        id: u64,
        kind: &str,
        key: &str,
        essential: bool,
        source: &str,
        stream: &str,
    ) -> WriteDataPacketRequest {
        WriteDataPacketRequest {
            detail: Some(DataPacketDetails {
                message: Some(Packet {
                    r#type: kind.to_owned(),
                    session_key: key.to_owned(),
                    is_essential: essential,
                    content: content.into(),
                    id,
                }),
                data_source: source.to_owned(),
                stream: stream.to_owned(),
                session_key: key.to_owned(),
            }),
        }
    }

    /// The framed request's message, decoded by prost, and where its content starts.
    fn decoded(framed: &[u8]) -> (WriteDataPacketRequest, usize) {
        assert_eq!(framed[0], 0, "not compressed");
        let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
        assert_eq!(
            framed.len(),
            5 + len,
            "the prefix gives the message's length"
        );
        let request = WriteDataPacketRequest::decode(&framed[5..]).expect("prost decodes it");
        let content = request
            .detail
            .as_ref()
            .and_then(|detail| detail.message.as_ref())
            .map_or(0, |packet| packet.content.len());
        (request, framed.len() - content)
    }

    proptest! {
        /// The pieces decode as the request, and the content is their last bytes.
        #[test]
        fn the_pieces_are_the_request_with_its_prefix_and_the_content_last(
            content in prop::collection::vec(any::<u8>(), 0..300),
            id in prop_oneof![Just(0u64), any::<u64>()],
            kind in "[A-Za-z]{0,12}",
            key in "[a-f0-9-]{0,36}",
            essential in any::<bool>(),
            source in "[A-Za-z]{0,10}",
            stream in "[a-z0-9]{0,6}",
        ) {
            let request = request(content.clone(), id, &kind, &key, essential, &source, &stream);
            let expected = request.clone();
            let pieces = RequestPieces::new(request).expect("a packet");
            let framed = pieces.concatenated();
            prop_assert_eq!(pieces.request_len(), expected.encoded_len());
            let (decoded, content_at) = decoded(&framed);
            prop_assert_eq!(decoded, expected);
            prop_assert_eq!(&framed[content_at..], &content[..]);
        }
    }

    #[test]
    fn the_content_goes_out_from_its_own_buffer() {
        let content = Bytes::from(vec![7u8; 4096]);
        let mut request = request(Vec::new(), 9, "RowData", "k", false, "src", "can0");
        if let Some(packet) = request
            .detail
            .as_mut()
            .and_then(|detail| detail.message.as_mut())
        {
            packet.content = content.clone();
        }
        let pieces = RequestPieces::new(request).expect("a packet");
        assert_eq!(pieces.pieces[1].as_ptr(), content.as_ptr());
        assert_eq!(pieces.pieces[1].len(), 4096);
    }

    /// The body gives each non-empty piece as one DATA frame, knows how much is left, and
    /// has ended with the last piece, before it is polled again.
    #[test]
    fn the_body_ends_with_its_last_piece() {
        let request = request(vec![5; 100], 3, "RowData", "k", false, "src", "");
        let pieces = RequestPieces::new(request).expect("a packet");
        let total = pieces.request_len() as u64 + 5;
        let mut body = PiecesBody::new(pieces);
        assert_eq!(body.size_hint().exact(), Some(total));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut lens = Vec::new();
        while !body.is_end_stream() {
            let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) else {
                panic!("a frame while not ended");
            };
            lens.push(frame.into_data().expect("data").len());
        }
        assert_eq!(lens.len(), 2, "{lens:?}");
        assert_eq!(lens[1], 100);
        assert_eq!(lens.iter().sum::<usize>() as u64, total);
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
    }

    /// Our Stream API, strict or not, and a channel to it.
    async fn server(strict: bool) -> (stream_api::ServerHandle, Channel) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let options = stream_api::ServerOptions {
            strict,
            record: None,
        };
        let server = stream_api::spawn(listener, options)
            .await
            .expect("server starts");
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
                .expect("endpoint")
                .connect_lazy();
        (server, channel)
    }

    /// The server's answers read as tonic reads them: OK from a lenient server, and a strict
    /// server's refusal (a packet for a session it never opened; an error sent as headers
    /// only) as its own code and message, which decide between retrying and rejecting.
    #[tokio::test]
    async fn the_servers_ok_and_its_refusal_come_back_as_they_were_sent() {
        let packet = || {
            request(
                vec![1; 64],
                7,
                "RowData",
                "no-such-session",
                false,
                "src",
                "",
            )
        };
        let (lenient, channel) = server(false).await;
        write_data_packet(channel, packet(), Duration::from_secs(5), 1 << 20)
            .await
            .expect("a lenient server takes it");
        assert_eq!(lenient.stats().packets, 1, "{:?}", lenient.stats());
        let (strict, channel) = server(true).await;
        let status = write_data_packet(channel, packet(), Duration::from_secs(5), 1 << 20)
            .await
            .expect_err("a strict server refuses it");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(!status.message().is_empty(), "{status:?}");
        assert!(!strict.violations().is_empty());
    }

    /// A listener on 127.0.0.1 port 0 and a channel to it, not yet connected.
    async fn listener_and_channel() -> (tokio::net::TcpListener, Channel) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let address = listener.local_addr().expect("address");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .connect_lazy();
        (listener, channel)
    }

    /// A server that takes the connection and never answers: the call ends with its timeout
    /// (tonic's channel enforces the `grpc-timeout` the request carries), not never.
    #[tokio::test]
    async fn a_call_the_server_never_answers_ends_at_its_timeout() {
        let (listener, channel) = listener_and_channel().await;
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            std::future::pending::<()>().await;
            drop(socket);
        });
        let started = std::time::Instant::now();
        let request = request(vec![1; 100], 1, "RowData", "k", false, "src", "");
        let call = write_data_packet(channel, request, Duration::from_millis(300), 1 << 20);
        let status = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the call ends by its timeout")
            .expect_err("no answer");
        let took = started.elapsed();
        assert_eq!(status.code(), Code::Cancelled, "{status:?}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
        silent.abort();
    }

    /// A request over the limit is refused before anything is sent, as tonic refuses it.
    #[tokio::test]
    async fn a_request_over_the_limit_is_refused_unsent() {
        let (listener, channel) = listener_and_channel().await;
        let request = request(vec![1; 2000], 1, "RowData", "k", false, "src", "");
        let status = write_data_packet(channel, request, Duration::from_secs(1), 1000)
            .await
            .expect_err("too large");
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(status.message().contains("1000 bytes"), "{status:?}");
        let connected = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(connected.is_err(), "nothing connected");
    }

    #[test]
    fn timeouts_fit_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_secs(5)), "5000000u");
        assert_eq!(grpc_timeout(Duration::from_secs(1000)), "1000000m");
        assert_eq!(grpc_timeout(Duration::from_secs(10_000_000)), "10000000S");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
    }
}
