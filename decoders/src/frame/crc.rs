//! Frame checks: the CRC-16 variants, CRC-32 (zlib) and the 8-bit sum and xor that native ECU
//! frames carry, table-driven with tables built at compile time.
//!
//! Pure functions over byte slices; no state, no allocation. Each variant is pinned down by its
//! check value over ASCII `"123456789"` (table in `docs/frame-definitions.md`).

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
            Self::Crc16CcittFalse => u32::from(crc16_msb(0xFFFF, data)),
            Self::Crc16Xmodem => u32::from(crc16_msb(0, data)),
            Self::Crc16Kermit => u32::from(crc16_lsb(0, data)),
            Self::Crc16Mcrf4xx => u32::from(crc16_lsb(0xFFFF, data)),
            Self::Crc16X25 => u32::from(crc16_lsb(0xFFFF, data) ^ 0xFFFF),
            Self::Crc32 => crc32(data),
            Self::Sum8 => u32::from(data.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))),
            Self::Xor8 => u32::from(data.iter().fold(0u8, |acc, b| acc ^ b)),
        }
    }
}

/// CRC-32 (zlib) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let crc = data.iter().fold(0xFFFF_FFFFu32, |crc, &b| {
        CRC32_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    });
    crc ^ 0xFFFF_FFFF
}

/// CRC-16 with poly 0x1021, MSB first (not reflected), no final xor.
fn crc16_msb(init: u16, data: &[u8]) -> u16 {
    data.iter().fold(init, |crc, &b| {
        CRC16_MSB_TABLE[usize::from((crc >> 8) as u8 ^ b)] ^ (crc << 8)
    })
}

/// CRC-16 with poly 0x1021 reflected (0x8408), LSB first, no final xor.
fn crc16_lsb(init: u16, data: &[u8]) -> u16 {
    data.iter().fold(init, |crc, &b| {
        CRC16_LSB_TABLE[usize::from(crc as u8 ^ b)] ^ (crc >> 8)
    })
}

static CRC16_MSB_TABLE: [u16; 256] = crc16_msb_table();
static CRC16_LSB_TABLE: [u16; 256] = crc16_lsb_table();
static CRC32_TABLE: [u32; 256] = crc32_table();

const fn crc16_msb_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const fn crc16_lsb_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

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
