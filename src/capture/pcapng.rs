//! pcapng for UDP sources: a writer that wraps each received datagram in a synthesized
//! IPv4/IPv6 + UDP header (LINKTYPE_RAW, nanosecond timestamps), and a block-at-a-time reader
//! (pcap-parser) that gets the UDP payloads and their timestamps back.
//!
//! Owns the byte layout only: callers hand in output buffers and receive-side byte slices, and
//! do the file IO. Never reads a clock. Invariants: the writer's blocks are little-endian and
//! 4-byte aligned, its IPv4 header and UDP checksums are valid, and the payload and
//! timestamp written are exactly those given; the reader never panics on any input and
//! borrows payloads from the caller's buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pcap_parser::Linktype;
use pcap_parser::nom;
use pcap_parser::pcapng::{Block, parse_block_be, parse_block_le};
use pcap_parser::traits::PcapNGPacketBlock;

/// The first four bytes of every pcapng file (the Section Header Block type).
pub const MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

/// Largest UDP payload that fits an IPv4 packet (IPv4 total length is 16 bits).
pub const MAX_PAYLOAD: usize = 65_535 - IPV4_HEADER - UDP_HEADER;

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const IDB_TYPE: u32 = 1;
const EPB_TYPE: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_RAW: u16 = 101;
const OPT_END: u16 = 0;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_TSRESOL: u16 = 9;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const UDP_PROTOCOL: u8 = 17;
const TTL: u8 = 64;
/// A block claiming more than this is treated as corrupt rather than waited for.
const MAX_BLOCK_LEN: usize = 16 << 20;

/// Appends a Section Header Block (little-endian, version 1.0, unknown section length).
pub fn write_section_header(out: &mut Vec<u8>) {
    let start = begin_block(SHB_TYPE, out);
    out.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(-1i64).to_le_bytes());
    write_option(OPT_SHB_USERAPPL, b"ecu-bridge record", out);
    write_option(OPT_END, &[], out);
    end_block(start, out);
}

/// Appends an Interface Description Block: raw IP packets, nanosecond timestamps, `if_name`.
pub fn write_interface(name: &str, out: &mut Vec<u8>) {
    let start = begin_block(IDB_TYPE, out);
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    // Snap length 0: no limit.
    out.extend_from_slice(&0u32.to_le_bytes());
    write_option(OPT_IF_NAME, name.as_bytes(), out);
    write_option(OPT_IF_TSRESOL, &[9], out);
    write_option(OPT_END, &[], out);
    end_block(start, out);
}

/// Appends an Enhanced Packet Block holding `payload` as a UDP datagram from `peer` to `local`,
/// stamped `time_ns`. Returns false (and appends nothing) when the payload is larger than
/// [`MAX_PAYLOAD`], which no IPv4 packet can carry.
pub fn write_packet(
    interface: u32,
    time_ns: u64,
    (peer, local): (SocketAddr, SocketAddr),
    payload: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    if payload.len() > MAX_PAYLOAD {
        return false;
    }
    let start = begin_block(EPB_TYPE, out);
    out.extend_from_slice(&interface.to_le_bytes());
    // The timestamp is split high word first, whatever the byte order.
    out.extend_from_slice(&((time_ns >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&(time_ns as u32).to_le_bytes());
    let lengths_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let packet_at = out.len();
    write_ip_udp(peer, local, payload, out);
    let packet_len = ((out.len() - packet_at) as u32).to_le_bytes();
    out[lengths_at..lengths_at + 4].copy_from_slice(&packet_len);
    out[lengths_at + 4..lengths_at + 8].copy_from_slice(&packet_len);
    pad4(out.len() - packet_at, out);
    end_block(start, out);
    true
}

/// One UDP datagram read back from a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<'a> {
    /// Receive time, ns since the UNIX epoch.
    pub time_ns: u64,
    /// Index of the interface (IDB) in its section.
    pub interface: u32,
    /// Sender.
    pub peer: SocketAddr,
    /// Receiver.
    pub local: SocketAddr,
    /// The UDP payload, exactly as captured.
    pub payload: &'a [u8],
}

/// What one block amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapngEvent<'a> {
    /// A UDP datagram.
    Packet(UdpPacket<'a>),
    /// A block that carries no datagram (headers, statistics, unknown types).
    Other,
    /// A packet or block that could not be used; the label is a `decode_errors` kind.
    Rejected(&'static str),
}

/// Why reading cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PcapngError {
    /// The block's length field is impossible, so the next block cannot be found.
    #[error("corrupt pcapng block (length {0})")]
    CorruptBlock(u64),
    /// The first block is not a Section Header Block.
    #[error("not a pcapng section header")]
    NoSectionHeader,
}

/// Reads pcapng blocks one at a time from a caller-owned buffer; either byte order; several
/// sections and interfaces; link types raw IP, IPv4, IPv6, Ethernet and Linux cooked (SLL).
#[derive(Debug, Default)]
pub struct PcapngReader {
    /// Byte order of the current section; `None` until the first section header.
    big_endian: Option<bool>,
    /// The current section's interfaces, by IDB index.
    interfaces: Vec<Interface>,
    /// Their `if_name`s (the recorder writes the source name there), by IDB index.
    interface_names: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: Linktype,
    /// Timestamp units per second; `None` when `if_tsresol` is unusable.
    units_per_second: Option<u64>,
    offset_seconds: i64,
}

impl PcapngReader {
    /// The `if_name` of interface `index` of the current section, if it has one.
    pub fn interface_name(&self, index: u32) -> Option<&str> {
        self.interface_names.get(index as usize)?.as_deref()
    }

    /// A reader expecting a section header first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the block at the start of `buf`. `Ok(None)`: the block is not complete yet (read
    /// more, or at end of file the capture is truncated). Otherwise returns the bytes used.
    pub fn handle_block<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(usize, PcapngEvent<'a>)>, PcapngError> {
        if buf.len() < 12 {
            return Ok(None);
        }
        let declared = self.declared_len(buf)?;
        let parsed = match self.big_endian {
            None if buf[..4] != MAGIC => return Err(PcapngError::NoSectionHeader),
            Some(true) if buf[..4] != MAGIC => parse_block_be(buf),
            _ => parse_block_le(buf),
        };
        let block = match parsed {
            Ok((rest, block)) => (buf.len() - rest.len(), block),
            Err(nom::Err::Incomplete(_)) if buf.len() < declared => return Ok(None),
            Err(nom::Err::Incomplete(_) | nom::Err::Error(_) | nom::Err::Failure(_)) => {
                // The length is plausible, so the next block can still be found.
                return Ok(Some((declared, PcapngEvent::Rejected("pcapng_block"))));
            }
        };
        let (used, block) = block;
        Ok(Some((used, self.handle_parsed(block))))
    }

    /// The block's total length, checked enough to skip over it.
    fn declared_len(&self, buf: &[u8]) -> Result<usize, PcapngError> {
        let bytes = [buf[4], buf[5], buf[6], buf[7]];
        let big_endian = if buf[..4] == MAGIC {
            // A section header states its own byte order.
            buf[8..12] == BYTE_ORDER_MAGIC.to_be_bytes()
        } else {
            self.big_endian.unwrap_or(false)
        };
        let len = if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        } as usize;
        if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK_LEN {
            return Err(PcapngError::CorruptBlock(len as u64));
        }
        Ok(len)
    }

    fn handle_parsed<'a>(&mut self, block: Block<'a>) -> PcapngEvent<'a> {
        match block {
            Block::SectionHeader(shb) => {
                self.big_endian = Some(shb.big_endian());
                self.interfaces.clear();
                self.interface_names.clear();
                PcapngEvent::Other
            }
            Block::InterfaceDescription(idb) => {
                self.interfaces.push(Interface {
                    linktype: idb.linktype,
                    units_per_second: idb.ts_resolution(),
                    offset_seconds: idb.ts_offset(),
                });
                let name = idb.if_name().and_then(Result::ok).map(str::to_owned);
                self.interface_names.push(name);
                PcapngEvent::Other
            }
            Block::EnhancedPacket(epb) => {
                let Some(interface) = self.interfaces.get(epb.if_id as usize).copied() else {
                    return PcapngEvent::Rejected("pcapng_interface");
                };
                if epb.truncated() {
                    return PcapngEvent::Rejected("pcapng_snapped");
                }
                let ts = u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low);
                let Some(time_ns) = interface.time_ns(ts) else {
                    return PcapngEvent::Rejected("pcapng_timestamp");
                };
                // `data` is borrowed from the caller's buffer and includes the block's padding.
                let data = epb.data;
                let captured = &data[..(epb.caplen as usize).min(data.len())];
                match parse_link(interface.linktype, captured) {
                    Ok((peer, local, payload)) => PcapngEvent::Packet(UdpPacket {
                        time_ns,
                        interface: epb.if_id,
                        peer,
                        local,
                        payload,
                    }),
                    Err(kind) => PcapngEvent::Rejected(kind),
                }
            }
            _ => PcapngEvent::Other,
        }
    }
}

impl Interface {
    /// Epoch nanoseconds of a raw timestamp, exactly (128-bit intermediate).
    fn time_ns(&self, ts: u64) -> Option<u64> {
        let units = u128::from(self.units_per_second?);
        let ns = i128::try_from(u128::from(ts) * 1_000_000_000 / units).ok()?;
        let ns = ns + i128::from(self.offset_seconds) * 1_000_000_000;
        u64::try_from(ns).ok()
    }
}

/// Appends the IPv4 (both addresses IPv4) or IPv6 header, the UDP header and the payload.
fn write_ip_udp(peer: SocketAddr, local: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    let udp_len = (UDP_HEADER + payload.len()) as u16;
    let (src, dst) = (canonical(peer.ip()), canonical(local.ip()));
    let pseudo_sum = match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let at = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&(IPV4_HEADER as u16 + udp_len).to_be_bytes());
            // Identification 0, no fragmentation flags, TTL, protocol, checksum placeholder.
            out.extend_from_slice(&[0, 0, 0, 0, TTL, UDP_PROTOCOL, 0, 0]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            let checksum = !fold(sum16(&out[at..]));
            out[at + 10..at + 12].copy_from_slice(&checksum.to_be_bytes());
            sum16(&src.octets()) + sum16(&dst.octets())
        }
        (src, dst) => {
            let (src, dst) = (to_v6(src), to_v6(dst));
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[UDP_PROTOCOL, TTL]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            sum16(&src.octets()) + sum16(&dst.octets())
        }
    };
    let at = out.len();
    out.extend_from_slice(&peer.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let sum = pseudo_sum + u64::from(UDP_PROTOCOL) + u64::from(udp_len) + sum16(&out[at..]);
    // A computed 0 is sent as all ones: 0 means "no checksum" (IPv4 only).
    let checksum = match !fold(sum) {
        0 => 0xFFFF,
        checksum => checksum,
    };
    out[at + 6..at + 8].copy_from_slice(&checksum.to_be_bytes());
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// One's-complement sum of big-endian 16-bit words (odd tail padded with zero), unfolded.
fn sum16(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    let sum: u64 = chunks
        .by_ref()
        .map(|pair| u64::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    sum + chunks.remainder().first().map_or(0, |&b| u64::from(b) << 8)
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// The UDP datagram inside a link-layer frame: (source, destination, payload).
fn parse_link(
    linktype: Linktype,
    data: &[u8],
) -> Result<(SocketAddr, SocketAddr, &[u8]), &'static str> {
    let ip = match linktype {
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => data,
        Linktype::ETHERNET => {
            let mut at = 12;
            // 802.1Q / 802.1ad tags.
            while matches!(data.get(at..at + 2), Some([0x81, 0x00] | [0x88, 0xA8])) {
                at += 4;
            }
            data.get(at + 2..).ok_or("pcapng_link")?
        }
        Linktype::LINUX_SLL => data.get(16..).ok_or("pcapng_link")?,
        _ => return Err("pcapng_linktype"),
    };
    parse_ip_udp(ip)
}

fn parse_ip_udp(ip: &[u8]) -> Result<(SocketAddr, SocketAddr, &[u8]), &'static str> {
    let (src, dst, udp) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let header = usize::from(ip[0] & 0x0F) * 4;
            let total = ip
                .get(2..4)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            let (Some(total), true) = (total, header >= IPV4_HEADER) else {
                return Err("ip_header");
            };
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF;
            if fragment != 0 {
                return Err("ip_fragment");
            }
            if ip[9] != UDP_PROTOCOL {
                return Err("not_udp");
            }
            let udp = ip.get(header..total.min(ip.len())).ok_or("ip_header")?;
            let src: [u8; 4] = ip
                .get(12..16)
                .and_then(|b| b.try_into().ok())
                .ok_or("ip_header")?;
            let dst: [u8; 4] = ip
                .get(16..20)
                .and_then(|b| b.try_into().ok())
                .ok_or("ip_header")?;
            (
                IpAddr::from(Ipv4Addr::from(src)),
                IpAddr::from(Ipv4Addr::from(dst)),
                udp,
            )
        }
        Some(6) if ip.len() >= IPV6_HEADER => {
            if ip[6] != UDP_PROTOCOL {
                return Err("not_udp");
            }
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let udp = &ip[IPV6_HEADER..(IPV6_HEADER + len).min(ip.len())];
            let src: [u8; 16] = ip[8..24].try_into().map_err(|_| "ip_header")?;
            let dst: [u8; 16] = ip[24..40].try_into().map_err(|_| "ip_header")?;
            (
                IpAddr::from(Ipv6Addr::from(src)),
                IpAddr::from(Ipv6Addr::from(dst)),
                udp,
            )
        }
        _ => return Err("ip_header"),
    };
    if udp.len() < UDP_HEADER {
        return Err("udp_header");
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let payload = udp.get(UDP_HEADER..len).ok_or("udp_header")?;
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    Ok((
        SocketAddr::new(src, port(0)),
        SocketAddr::new(dst, port(2)),
        payload,
    ))
}

fn begin_block(block_type: u32, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&block_type.to_le_bytes());
    // Total length, filled in by `end_block`.
    out.extend_from_slice(&[0; 4]);
    start
}

fn end_block(start: usize, out: &mut Vec<u8>) {
    let len = ((out.len() - start + 4) as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&len);
}

fn write_option(code: u16, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    pad4(value.len(), out);
}

/// Pads a field of `len` bytes just appended to a multiple of 4 bytes.
fn pad4(len: usize, out: &mut Vec<u8>) {
    out.resize(out.len() + (len.next_multiple_of(4) - len), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> (SocketAddr, SocketAddr) {
        (
            "192.168.1.20:20000".parse().expect("addr"),
            "192.168.1.2:20001".parse().expect("addr"),
        )
    }

    fn file(payloads: &[(u64, &[u8])], addrs: (SocketAddr, SocketAddr)) -> Vec<u8> {
        let mut out = vec![0xEE; 3];
        write_section_header(&mut out);
        write_interface("gw", &mut out);
        for (time, payload) in payloads {
            assert!(write_packet(0, *time, addrs, payload, &mut out));
        }
        assert_eq!(&out[..3], &[0xEE; 3], "appends only");
        out.split_off(3)
    }

    type Read = Result<(u64, SocketAddr, SocketAddr, Vec<u8>), &'static str>;

    fn read_all(bytes: &[u8]) -> Vec<Read> {
        let mut reader = PcapngReader::new();
        let mut at = 0;
        let mut events = Vec::new();
        while let Some((used, event)) = reader.handle_block(&bytes[at..]).expect("readable") {
            at += used;
            match event {
                PcapngEvent::Packet(p) => {
                    events.push(Ok((p.time_ns, p.peer, p.local, p.payload.to_vec())))
                }
                PcapngEvent::Rejected(kind) => events.push(Err(kind)),
                PcapngEvent::Other => {}
            }
        }
        events
    }

    #[test]
    fn round_trip_keeps_time_addresses_and_payload() {
        let t = 1_778_936_400_123_456_789;
        for addrs in [
            addresses(),
            (
                "[fe80::1]:5".parse().expect("addr"),
                "[::1]:6".parse().expect("addr"),
            ),
        ] {
            let bytes = file(&[(t, b"abc"), (t + 1, &[])], addrs);
            let events = read_all(&bytes);
            assert_eq!(
                events,
                [
                    Ok((t, addrs.0, addrs.1, b"abc".to_vec())),
                    Ok((t + 1, addrs.0, addrs.1, vec![]))
                ]
            );
        }
    }

    /// The example in `docs/capture-formats.md`.
    static DOCUMENTED_EPB: &[u8] = &[
        0x06, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x3b, 0x0d, 0xb0, 0x18, 0x15, 0xed, 0x5e, 0x0f,
        0x1f, 0, 0, 0, 0x1f, 0, 0, 0, 0x45, 0, 0, 0x1f, 0, 0, 0, 0, 0x40, 0x11, 0xe5, 0x74, 0xc0,
        0xa8, 0x0a, 0x07, 0xc0, 0xa8, 0x0a, 0x02, 0x4e, 0x20, 0x4e, 0x21, 0, 0x0b, 0x57, 0x80,
        0xaa, 0xbb, 0xcc, 0, 0x40, 0, 0, 0,
    ];

    #[test]
    fn documented_example() {
        let mut out = vec![0xEE];
        let time = 1_778_936_400_123_456_789;
        assert!(write_packet(
            0,
            time,
            addresses_doc(),
            &[0xAA, 0xBB, 0xCC],
            &mut out
        ));
        assert_eq!(&out[1..], DOCUMENTED_EPB);
        let mut reader = PcapngReader::new();
        let mut header = Vec::new();
        write_section_header(&mut header);
        write_interface("gw", &mut header);
        while let Some((used, _)) = reader.handle_block(&header).expect("ok") {
            header.drain(..used);
        }
        let (used, event) = reader
            .handle_block(DOCUMENTED_EPB)
            .expect("ok")
            .expect("epb");
        let want = UdpPacket {
            time_ns: time,
            interface: 0,
            peer: addresses_doc().0,
            local: addresses_doc().1,
            payload: &[0xAA, 0xBB, 0xCC],
        };
        assert_eq!((used, event), (64, PcapngEvent::Packet(want)));
    }

    fn addresses_doc() -> (SocketAddr, SocketAddr) {
        (
            "192.168.10.7:20000".parse().expect("addr"),
            "192.168.10.2:20001".parse().expect("addr"),
        )
    }

    #[test]
    fn ethernet_vlan_and_cooked_frames_are_unwrapped() {
        let mut epb = Vec::new();
        assert!(write_packet(0, 1, addresses(), b"xy", &mut epb));
        let ip = &epb[28..28 + 30];
        let ethernet = [&[0xFF; 12][..], &[0x81, 0x00, 0, 5, 0x08, 0x00], ip].concat();
        let cooked = [&[0; 14][..], &[0x08, 0x00], ip].concat();
        let want = Ok((addresses().0, addresses().1, &b"xy"[..]));
        assert_eq!(parse_link(Linktype::ETHERNET, &ethernet), want);
        assert_eq!(parse_link(Linktype::LINUX_SLL, &cooked), want);
        assert_eq!(parse_link(Linktype::NULL, ip), Err("pcapng_linktype"));
        let mut fragment = ip.to_vec();
        fragment[6] = 0x20;
        assert_eq!(parse_link(Linktype::RAW, &fragment), Err("ip_fragment"));
        assert_eq!(parse_link(Linktype::RAW, &ip[..27]), Err("udp_header"));
    }

    #[test]
    fn headers_have_valid_checksums() {
        let bytes = file(&[(5, b"odd")], addresses());
        // SHB (56 with the user application option) + IDB (40) + EPB header (28).
        let ip = &bytes[56 + 40 + 28..];
        assert_eq!(fold(sum16(&ip[..20])), 0xFFFF, "IPv4 header checksum");
        let udp = &ip[20..31];
        let pseudo = sum16(&ip[12..20]) + 17 + 11;
        assert_eq!(fold(pseudo + sum16(udp)), 0xFFFF, "UDP checksum");
    }

    #[test]
    fn truncated_and_impossible_blocks() {
        let bytes = file(&[(5, b"payload")], addresses());
        let mut reader = PcapngReader::new();
        let (used, _) = reader.handle_block(&bytes).expect("ok").expect("shb");
        let (used2, _) = reader
            .handle_block(&bytes[used..])
            .expect("ok")
            .expect("idb");
        let epb = &bytes[used + used2..];
        assert_eq!(
            reader.handle_block(&epb[..epb.len() - 1]),
            Ok(None),
            "incomplete"
        );
        let mut bad = epb.to_vec();
        bad[4] = 13;
        assert_eq!(
            reader.handle_block(&bad),
            Err(PcapngError::CorruptBlock(13))
        );
        assert_eq!(
            PcapngReader::new().handle_block(epb),
            Err(PcapngError::NoSectionHeader)
        );
        let mut no_udp = epb.to_vec();
        no_udp[28 + 9] = 6;
        let event = reader.handle_block(&no_udp).expect("ok").expect("block").1;
        assert_eq!(event, PcapngEvent::Rejected("not_udp"));
    }
}
