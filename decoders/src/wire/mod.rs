//! CAN transports: byte and text formats that carry CAN frames (cannelloni over UDP, SLCAN over
//! serial, `candump -L` capture files). Each parser borrows its input, allocates nothing, and
//! reports malformed input as a [`crate::DecodeError`] with the offset.

pub mod candump;
pub mod cannelloni;
pub mod slcan;
