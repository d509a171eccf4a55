//! The byte-stream links a serial-protocol source reads: a serial device, or a raw TCP
//! connection to a serial bridge (ESP32, Moxa …) carrying the same bytes. Opens either one
//! into a [`Port`] that reads and writes like the device, so SLCAN, native frames and
//! TunerStudio polling run unchanged over both.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_serial::SerialStream;

use crate::config::{
    FlowControl, Parity, SerialSourceConfig, SlcanSetup, SourceKind, TcpSourceConfig,
};

/// How long one TCP connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a byte-stream source's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// A serial device.
    Device(SerialSourceConfig),
    /// A TCP connection.
    Tcp(TcpSourceConfig),
}

impl Link {
    /// The link of a serial or TCP source kind; `None` for UDP.
    pub fn of(kind: &SourceKind) -> Option<Self> {
        match kind {
            SourceKind::Serial(serial) => Some(Self::Device(serial.clone())),
            SourceKind::Tcp(tcp) => Some(Self::Tcp(tcp.clone())),
            SourceKind::Udp(_) => None,
        }
    }

    /// Opens the link once.
    pub async fn open(&self) -> io::Result<Port> {
        match self {
            Self::Device(config) => open_device(config).map(Port::Serial),
            Self::Tcp(config) => {
                let connect = TcpStream::connect(config.address.as_str());
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                // Requests are small and latency-bound: never hold one back to coalesce.
                stream.set_nodelay(true)?;
                Ok(Port::Tcp(stream))
            }
        }
    }

    /// Whether a failed first open means "not there yet" (wait for it, as after an unplug)
    /// rather than a configuration mistake: a missing device, or a bridge not answering.
    pub fn is_absent(&self, error: &io::Error) -> bool {
        match self {
            Self::Device(_) => error.kind() == io::ErrorKind::NotFound,
            Self::Tcp(_) => true,
        }
    }

    /// The device path to watch for removal (serial only).
    pub fn device(&self) -> Option<&Path> {
        match self {
            Self::Device(config) => Some(&config.device),
            Self::Tcp(_) => None,
        }
    }

    /// The SLCAN set-up, if the link reaches an SLCAN adapter.
    pub fn slcan(&self) -> Option<&SlcanSetup> {
        match self {
            Self::Device(config) => config.slcan.as_ref(),
            Self::Tcp(config) => config.slcan.as_ref(),
        }
    }

    /// First and longest retry delay after a loss.
    pub fn reconnect_delays(&self) -> (Duration, Duration) {
        match self {
            Self::Device(config) => (config.reconnect_initial, config.reconnect_max),
            Self::Tcp(config) => (config.reconnect_initial, config.reconnect_max),
        }
    }

    /// The device path or `tcp://host:port`, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Device(config) => config.device.display().to_string(),
            Self::Tcp(config) => format!("tcp://{}", config.address),
        }
    }
}

/// An open link.
#[derive(Debug)]
pub enum Port {
    /// A serial device.
    Serial(SerialStream),
    /// A TCP connection.
    Tcp(TcpStream),
}

impl AsyncRead for Port {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Serial(port) => Pin::new(port).poll_read(cx, buf),
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Port {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Serial(port) => Pin::new(port).poll_write(cx, buf),
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Serial(port) => Pin::new(port).poll_flush(cx),
            Self::Tcp(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Serial(port) => Pin::new(port).poll_shutdown(cx),
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// Opens the serial device with the configured line settings.
fn open_device(config: &SerialSourceConfig) -> io::Result<SerialStream> {
    let path = config
        .device
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "device path is not UTF-8"))?;
    let data_bits = match config.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let stop_bits = match config.stop_bits {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    let parity = match config.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let flow_control = match config.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    let builder = tokio_serial::new(path, config.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity)
        .flow_control(flow_control);
    SerialStream::open(&builder).map_err(io::Error::from)
}
