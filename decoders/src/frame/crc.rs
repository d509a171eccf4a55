//! Frame checks: the CRC-16 variants, CRC-32 (zlib) and the 8-bit sum and xor that native ECU
//! frames carry. The CRCs come from the `crc` crate's catalogue (tables built at compile time);
//! only the 8-bit sum and xor are written here.
//!
//! Pure functions over byte slices; no state, no allocation. Each variant is pinned down by its
//! check value over ASCII `"123456789"` (table in `docs/frame-definitions.md`).

use crc::Crc;
use serde::Deserialize;

/// The check algorithm a frame carries, named as in definition files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// No check.
    None,
    /// CRC-16/CCITT-FALSE (IBM-3740): poly 0x1021, init 0xFFFF, not reflected.
    Crc16CcittFalse,
    /// CRC-16/XMODEM: poly 0x1021, init 0, not reflected.
    Crc16Xmodem,
    /// CRC-16/KERMIT: poly 0x1021, init 0, reflected.
    Crc16Kermit,
    /// CRC-16/MCRF4XX (MAVLink's X.25 CRC): poly 0x1021, init 0xFFFF, reflected.
    Crc16Mcrf4xx,
    /// CRC-16/X-25: poly 0x1021, init 0xFFFF, reflected, xorout 0xFFFF.
    Crc16X25,
    /// CRC-32 (zlib, ISO-HDLC): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF.
    Crc32,
    /// Sum of the bytes modulo 256.
    Sum8,
    /// Xor of the bytes.
    Xor8,
}

impl CheckKind {
    /// Width of the check value in bytes (0 for [`CheckKind::None`]).
    pub fn width(self) -> usize {
        match self {
            Self::None => 0,
            Self::Sum8 | Self::Xor8 => 1,
            Self::Crc32 => 4,
            Self::Crc16CcittFalse
            | Self::Crc16Xmodem
            | Self::Crc16Kermit
            | Self::Crc16Mcrf4xx
            | Self::Crc16X25 => 2,
        }
    }

    /// The check value of `data` (0 for [`CheckKind::None`]).
    pub fn compute(self, data: &[u8]) -> u32 {
        match self {
            Self::None => 0,
            Self::Crc16CcittFalse => u32::from(CRC16_CCITT_FALSE.checksum(data)),
            Self::Crc16Xmodem => u32::from(CRC16_XMODEM.checksum(data)),
            Self::Crc16Kermit => u32::from(CRC16_KERMIT.checksum(data)),
            Self::Crc16Mcrf4xx => u32::from(CRC16_MCRF4XX.checksum(data)),
            Self::Crc16X25 => u32::from(CRC16_X25.checksum(data)),
            Self::Crc32 => crc32(data),
            Self::Sum8 => u32::from(data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))),
            Self::Xor8 => u32::from(data.iter().fold(0u8, |acc, b| acc ^ b)),
        }
    }
}

/// CRC-32 (zlib) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    CRC32.checksum(data)
}

/// The catalogue entries by their catalogue names: IBM-3740 is CCITT-FALSE and IBM-SDLC is X-25.
static CRC16_CCITT_FALSE: Crc<u16> = Crc::<u16>::new(&crc::CRC_16_IBM_3740);
static CRC16_XMODEM: Crc<u16> = Crc::<u16>::new(&crc::CRC_16_XMODEM);
static CRC16_KERMIT: Crc<u16> = Crc::<u16>::new(&crc::CRC_16_KERMIT);
static CRC16_MCRF4XX: Crc<u16> = Crc::<u16>::new(&crc::CRC_16_MCRF4XX);
static CRC16_X25: Crc<u16> = Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
static CRC32: Crc<u32> = Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK: &[u8] = b"123456789";

    #[test]
    fn check_values_match_the_catalogue() {
        assert_eq!(CheckKind::Crc16CcittFalse.compute(CHECK), 0x29B1);
        assert_eq!(CheckKind::Crc16Xmodem.compute(CHECK), 0x31C3);
        assert_eq!(CheckKind::Crc16Kermit.compute(CHECK), 0x2189);
        assert_eq!(CheckKind::Crc16Mcrf4xx.compute(CHECK), 0x6F91);
        assert_eq!(CheckKind::Crc16X25.compute(CHECK), 0x906E);
        assert_eq!(CheckKind::Crc32.compute(CHECK), 0xCBF4_3926);
    }

    #[test]
    fn sums_and_widths() {
        // 0x31 + … + 0x39 = 477 = 0x1DD; xor of '1'..'9' = 0x31.
        assert_eq!(CheckKind::Sum8.compute(CHECK), 0xDD);
        assert_eq!(CheckKind::Xor8.compute(CHECK), 0x31);
        assert_eq!(CheckKind::None.compute(CHECK), 0);
        assert_eq!(CheckKind::Crc32.width(), 4);
        assert_eq!(CheckKind::Crc16X25.width(), 2);
        assert_eq!(CheckKind::Sum8.width(), 1);
        assert_eq!(CheckKind::None.width(), 0);
    }

    #[test]
    fn empty_input_gives_the_init_value() {
        assert_eq!(CheckKind::Crc16CcittFalse.compute(&[]), 0xFFFF);
        assert_eq!(CheckKind::Crc32.compute(&[]), 0);
    }
}
