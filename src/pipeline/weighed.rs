//! A channel bounded in bytes as well as in items, for an edge whose items vary in size by
//! orders of magnitude: the rows edge from decode to batch, where a batch of 256 frames holds
//! 20 KiB of rows for a powertrain CAN map and 1 MiB for 64-byte CAN FD frames of 512 one-bit
//! signals, and the frames edge from the sources to decode, where one cannelloni datagram can
//! carry thousands of frames and a UDP source hands on everything it held back while the edge
//! was full (`docs/performance.md`, "Bounded memory").
//!
//! Each item is weighed once, when sent ([`Weighed::weight`]). **When full** — as many items
//! as the channel holds, or items weighing `max_bytes` together — the sender waits, as on every
//! edge of the pipeline: back-pressure, nothing dropped. An item heavier than `max_bytes` counts
//! as `max_bytes`: it waits for an empty channel and then goes alone, so no item is refused for
//! its size. Items keep their order (one sender; the byte budget serves waiters first come,
//! first served). A sender that must never wait (a UDP source) reserves room for an item of
//! a known weight with [`Sender::try_reserve`] instead, or waits for it with
//! [`Sender::reserve`] where waiting is allowed.

use std::sync::Arc;

use tokio::sync::mpsc::{
    self, WeakSender,
    error::{SendError, TrySendError},
};
use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError};

/// Something with a size in memory worth bounding.
pub trait Weighed {
    /// Bytes the item holds (its heap buffers).
    fn weight(&self) -> usize;
}

/// A channel of at most `items` items weighing at most `max_bytes` together (`max_bytes` is
/// capped at `u32::MAX`).
pub fn channel<T: Weighed>(items: usize, max_bytes: usize) -> (Sender<T>, Receiver<T>) {
    let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
    let bytes = Arc::new(Semaphore::new(max_bytes as usize));
    let (sender, receiver) = mpsc::channel(items);
    (
        Sender {
            items: sender,
            bytes: Arc::clone(&bytes),
            max_bytes,
        },
        Receiver {
            items: receiver,
            bytes,
        },
    )
}

/// The sending half; cloning it adds a sender, as for `mpsc`.
#[derive(Debug)]
pub struct Sender<T> {
    items: mpsc::Sender<(T, u32)>,
    bytes: Arc<Semaphore>,
    max_bytes: u32,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            items: self.items.clone(),
            bytes: Arc::clone(&self.bytes),
            max_bytes: self.max_bytes,
        }
    }
}

impl<T: Weighed> Sender<T> {
    /// Sends `item`, waiting while the channel is full in items or in bytes; gives it back if
    /// the receiver is gone.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        match self.reserve(item.weight()).await {
            Ok(permit) => {
                permit.send(item);
                Ok(())
            }
            Err(SendError(())) => Err(SendError(item)),
        }
    }

    /// Waits for room for one item of `weight` bytes; fails once the receiver is gone.
    pub async fn reserve(&self, weight: usize) -> Result<Permit<'_, T>, SendError<()>> {
        let weight = self.clamp(weight);
        let budget = self
            .bytes
            .acquire_many(weight)
            .await
            .map_err(|_| SendError(()))?;
        let slot = self.items.reserve().await.map_err(|_| SendError(()))?;
        Ok(Permit {
            slot,
            budget,
            weight,
        })
    }

    /// Room for one item of `weight` bytes now, or why not: full (in items or in bytes) or
    /// closed.
    pub fn try_reserve(&self, weight: usize) -> Result<Permit<'_, T>, TrySendError<()>> {
        let weight = self.clamp(weight);
        let budget = match self.bytes.try_acquire_many(weight) {
            Ok(budget) => budget,
            Err(TryAcquireError::NoPermits) => return Err(TrySendError::Full(())),
            Err(TryAcquireError::Closed) => return Err(TrySendError::Closed(())),
        };
        let slot = self.items.try_reserve()?;
        Ok(Permit {
            slot,
            budget,
            weight,
        })
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.items.is_closed()
    }

    /// Completes when the receiver is gone.
    pub async fn closed(&self) {
        self.items.closed().await;
    }

    fn clamp(&self, weight: usize) -> u32 {
        u32::try_from(weight)
            .unwrap_or(u32::MAX)
            .min(self.max_bytes)
    }

    /// A sender that does not keep the channel open (the queue-depth sampler's).
    pub fn downgrade(&self) -> WeakSender<(T, u32)> {
        self.items.downgrade()
    }
}

/// Room for one item, reserved by weight: the item sent through it counts as that weight.
#[derive(Debug)]
pub struct Permit<'a, T> {
    slot: mpsc::Permit<'a, (T, u32)>,
    budget: SemaphorePermit<'a>,
    weight: u32,
}

impl<T> Permit<'_, T> {
    /// Sends `item` in the room reserved.
    pub fn send(self, item: T) {
        // The receiver gives the bytes back when it takes the item.
        self.budget.forget();
        self.slot.send((item, self.weight));
    }
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver<T> {
    items: mpsc::Receiver<(T, u32)>,
    bytes: Arc<Semaphore>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<T> {
        let (item, weight) = self.items.recv().await?;
        self.bytes.add_permits(weight as usize);
        Some(item)
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // A sender waiting for bytes would otherwise wait for ever.
        self.bytes.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An item of a given size, labelled for order checks.
    #[derive(Debug, PartialEq, Eq)]
    struct Item(usize, u32);

    impl Weighed for Item {
        fn weight(&self) -> usize {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sender_waits_while_the_bytes_are_full_and_order_and_count_hold() {
        let (sender, mut receiver) = channel::<Item>(64, 1000);
        let producer = tokio::spawn(async move {
            for label in 0..10 {
                // 400 bytes each: two fit, the third waits; 5 000 bytes go alone.
                let weight = if label == 5 { 5000 } else { 400 };
                sender
                    .send(Item(weight, label))
                    .await
                    .expect("receiver alive");
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(receiver.len(), 2, "two items of 400 bytes, then the bound");
        let mut labels = Vec::new();
        while let Some(Item(weight, label)) = receiver.recv().await {
            // Every taken item frees its bytes; what waits now is within the bound again.
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(
                receiver.len() <= 2,
                "{} items waiting after item {label} of {weight} bytes",
                receiver.len()
            );
            labels.push(label);
        }
        producer.await.expect("producer");
        assert_eq!(labels, (0..10).collect::<Vec<_>>(), "all, in order");
    }

    #[tokio::test(start_paused = true)]
    async fn room_reserved_by_weight_is_refused_while_the_bytes_are_full_and_waited_for() {
        let (sender, mut receiver) = channel::<Item>(64, 1000);
        sender.try_reserve(600).expect("room").send(Item(600, 0));
        assert!(
            matches!(sender.try_reserve(600), Err(TrySendError::Full(()))),
            "600 + 600 bytes over the bound"
        );
        // A permit not used gives its bytes back.
        drop(sender.try_reserve(400).expect("400 bytes fit"));
        sender
            .try_reserve(400)
            .expect("still fit")
            .send(Item(400, 1));
        let waiting = tokio::spawn(async move {
            sender.reserve(300).await.expect("room").send(Item(300, 2));
            sender
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "waits for bytes");
        assert_eq!(receiver.recv().await, Some(Item(600, 0)));
        let sender = waiting.await.expect("task");
        assert_eq!(receiver.recv().await, Some(Item(400, 1)));
        assert_eq!(receiver.recv().await, Some(Item(300, 2)));
        drop(receiver);
        assert!(matches!(
            sender.try_reserve(1),
            Err(TrySendError::Closed(()))
        ));
        assert!(sender.reserve(1).await.is_err(), "receiver gone");
        tokio::time::timeout(Duration::from_secs(1), sender.closed())
            .await
            .expect("closed completes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_waiting_for_bytes_gets_its_item_back_when_the_receiver_goes() {
        let (sender, receiver) = channel::<Item>(64, 1000);
        sender.send(Item(900, 0)).await.expect("fits");
        let waiting = tokio::spawn(async move { sender.send(Item(900, 1)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "waits for bytes");
        drop(receiver);
        let returned = waiting.await.expect("task").expect_err("receiver gone");
        assert_eq!(returned.0, Item(900, 1));
    }
}
