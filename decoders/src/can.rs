//! The CAN frame as every transport hands it over: an id, flags and up to 64 data bytes, owned
//! inline so frames move between stages without allocation.

/// A CAN identifier: 11-bit standard or 29-bit extended.
///
/// Stored as the id bits plus bit 31 for "extended", which is also how DBC files write extended
/// message ids, so a DBC id and a received id compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CanId(u32);

impl CanId {
    /// Bit 31 marks an extended (29-bit) id, as in DBC files and Linux `can_id`.
    pub const EXTENDED_FLAG: u32 = 0x8000_0000;
    /// Largest standard id.
    pub const MAX_STANDARD: u32 = 0x7FF;
    /// Largest extended id.
    pub const MAX_EXTENDED: u32 = 0x1FFF_FFFF;

    /// A standard 11-bit id; `None` above 0x7FF.
    pub fn standard(id: u32) -> Option<Self> {
        (id <= Self::MAX_STANDARD).then_some(Self(id))
    }

    /// An extended 29-bit id; `None` above 0x1FFF_FFFF.
    pub fn extended(id: u32) -> Option<Self> {
        (id <= Self::MAX_EXTENDED).then_some(Self(id | Self::EXTENDED_FLAG))
    }

    /// The id as a DBC file writes it: bit 31 set for extended ids.
    ///
    /// DBC files also hold pseudo ids above 0x7FF without the flag (layout aliases); those are
    /// kept as written so they never match a real standard frame.
    pub fn from_dbc(raw: u32) -> Self {
        Self(raw)
    }

    /// The id bits without the extended flag.
    pub fn id(self) -> u32 {
        self.0 & !Self::EXTENDED_FLAG
    }

    /// Whether this is a 29-bit id.
    pub fn is_extended(self) -> bool {
        self.0 & Self::EXTENDED_FLAG != 0
    }

    /// The DBC-style value: id bits, plus bit 31 when extended.
    pub fn to_dbc(self) -> u32 {
        self.0
    }
}

/// Frame flags that change how a frame is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CanFlags(u8);

impl CanFlags {
    /// Remote transmission request: carries a DLC but no data.
    pub const REMOTE: Self = Self(0x01);
    /// CAN FD frame (up to 64 data bytes).
    pub const FD: Self = Self(0x02);
    /// CAN FD bit-rate switch.
    pub const BRS: Self = Self(0x04);
    /// CAN FD error state indicator.
    pub const ESI: Self = Self(0x08);
    /// Error frame reported by the controller.
    pub const ERROR: Self = Self(0x10);

    /// No flags: a classic data frame.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags plus `other`.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The raw bits (for encoders).
    pub const fn bits(self) -> u8 {
        self.0
    }
}

/// One CAN or CAN FD frame.
///
/// Invariant: `len <= 64`, and `len <= 8` unless the frame is FD; a remote frame's `len` is its
/// requested DLC and its data is all zero.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CanFrame {
    /// Who sent it; selects the DBC message.
    pub id: CanId,
    /// Remote, FD and error markers.
    pub flags: CanFlags,
    len: u8,
    data: [u8; 64],
}

impl CanFrame {
    /// Largest CAN FD payload.
    pub const MAX_FD_LEN: usize = 64;
    /// Largest classic CAN payload.
    pub const MAX_CLASSIC_LEN: usize = 8;

    /// A data frame; `None` if `data` is longer than the frame kind allows.
    pub fn new(id: CanId, flags: CanFlags, data: &[u8]) -> Option<Self> {
        let max = if flags.contains(CanFlags::FD) {
            Self::MAX_FD_LEN
        } else {
            Self::MAX_CLASSIC_LEN
        };
        if data.len() > max {
            return None;
        }
        let mut bytes = [0u8; 64];
        bytes[..data.len()].copy_from_slice(data);
        Some(Self {
            id,
            flags,
            len: data.len() as u8,
            data: bytes,
        })
    }

    /// A classic data frame of the first `len` of `data`, whose bytes after them are zero (as
    /// [`CanFrame::new`] leaves them): the frame `new` makes of `&data[..len]`. `None` if
    /// `len > 8`, the flags mark an FD frame, or a byte after `len` is not zero. The eight
    /// bytes go in whole: a text parser has them as one word, and copying a slice of a length
    /// known only at run time cost a call.
    #[inline]
    pub fn classic(
        id: CanId,
        flags: CanFlags,
        data: [u8; Self::MAX_CLASSIC_LEN],
        len: usize,
    ) -> Option<Self> {
        let tail_is_zero = data.get(len..)?.iter().all(|&byte| byte == 0);
        if !tail_is_zero || flags.contains(CanFlags::FD) {
            return None;
        }
        let mut bytes = [0u8; Self::MAX_FD_LEN];
        bytes[..Self::MAX_CLASSIC_LEN].copy_from_slice(&data);
        Some(Self {
            id,
            flags,
            len: len as u8,
            data: bytes,
        })
    }

    /// A remote frame asking for `dlc` bytes; `None` if `dlc > 8`.
    pub fn remote(id: CanId, dlc: u8) -> Option<Self> {
        (usize::from(dlc) <= Self::MAX_CLASSIC_LEN).then_some(Self {
            id,
            flags: CanFlags::REMOTE,
            len: dlc,
            data: [0; 64],
        })
    }

    /// The payload (empty for remote frames).
    pub fn data(&self) -> &[u8] {
        if self.is_remote() {
            &[]
        } else {
            &self.data[..usize::from(self.len)]
        }
    }

    /// Payload length, or the requested DLC for a remote frame.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the frame has no payload bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this is a remote (RTR) frame.
    pub fn is_remote(&self) -> bool {
        self.flags.contains(CanFlags::REMOTE)
    }

    /// Whether this is a CAN FD frame.
    pub fn is_fd(&self) -> bool {
        self.flags.contains(CanFlags::FD)
    }
}

impl std::fmt::Debug for CanFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanFrame")
            .field("id", &format_args!("{:#x}", self.id.id()))
            .field("extended", &self.id.is_extended())
            .field("flags", &self.flags)
            .field("len", &self.len)
            .field("data", &self.data())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_kind() {
        assert_eq!(CanId::standard(0x7FF).map(CanId::id), Some(0x7FF));
        assert!(CanId::standard(0x800).is_none());
        let ext = CanId::extended(0x18FE_F100).expect("in range");
        assert!(ext.is_extended());
        assert_eq!(ext.to_dbc(), 0x98FE_F100);
        assert!(CanId::extended(0x2000_0000).is_none());
        assert_eq!(CanId::from_dbc(0x98FE_F100), ext);
    }

    #[test]
    fn frame_lengths_are_bounded_by_kind() {
        let id = CanId::standard(0x1A4).expect("in range");
        assert!(CanFrame::new(id, CanFlags::empty(), &[0; 9]).is_none());
        assert!(CanFrame::new(id, CanFlags::FD, &[0; 64]).is_some());
        assert!(CanFrame::new(id, CanFlags::FD, &[0; 65]).is_none());
        let rtr = CanFrame::remote(id, 8).expect("dlc 8");
        assert_eq!(rtr.len(), 8);
        assert!(rtr.data().is_empty());
    }

    #[test]
    fn a_classic_frame_is_the_frame_new_makes_of_its_bytes() {
        let id = CanId::standard(0x1A4).expect("in range");
        let data = [1, 2, 3, 0, 0, 0, 0, 0];
        for len in 3..=8 {
            for flags in [CanFlags::empty(), CanFlags::ERROR] {
                assert_eq!(
                    CanFrame::classic(id, flags, data, len),
                    CanFrame::new(id, flags, &data[..len]),
                );
            }
        }
        assert!(CanFrame::classic(id, CanFlags::empty(), data, 2).is_none());
        assert!(CanFrame::classic(id, CanFlags::empty(), data, 9).is_none());
        assert!(CanFrame::classic(id, CanFlags::FD, data, 8).is_none());
    }
}
