//! The queue-depth gauges ([`Metrics::queue_depths`]) as the channels hold them, read from the
//! sending side every [`QUEUE_SAMPLE_PERIOD`].
//!
//! A stage sets its input's depth when it receives, which says nothing while that stage is
//! blocked (sending into a full channel, or waiting for the Stream API): the gauge would keep
//! its last value, often 0, while data piles up. Sampling each channel's used capacity from a
//! task of its own keeps the gauges true whatever the stages are doing. The sampler holds only
//! weak senders, so it never keeps a channel open: drain by drop still ends every stage.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::WeakSender;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::edge::Queue;
use crate::telemetry::Metrics;

/// How often the channels' depths are read.
pub const QUEUE_SAMPLE_PERIOD: Duration = Duration::from_millis(250);

/// Reads the number of items waiting in one channel; `None` once every sender is gone.
pub type DepthProbe = Box<dyn Fn() -> Option<usize> + Send + Sync>;

/// A [`DepthProbe`] for the channel `sender` feeds.
pub fn probe<T: Send + 'static>(sender: WeakSender<T>) -> DepthProbe {
    Box::new(move || {
        // The upgraded sender lives only for this read; if it turns out to be the last one,
        // dropping it closes the channel exactly as the stage's own drop would have.
        let sender = sender.upgrade()?;
        Some(sender.max_capacity() - sender.capacity())
    })
}

/// Spawns the sampler: every [`QUEUE_SAMPLE_PERIOD`] it sets each queue's gauge to the items
/// its channel holds. A queue whose senders are all gone is left to its stage (which sets
/// the depth as it drains); the task ends when none is left. Abort it when the run ends.
pub fn spawn_sampler(metrics: Arc<Metrics>, probes: Vec<(Queue, DepthProbe)>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut probes = probes;
        let mut ticks = tokio::time::interval(QUEUE_SAMPLE_PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !probes.is_empty() {
            ticks.tick().await;
            probes.retain(|(queue, probe)| match probe() {
                Some(depth) => {
                    Metrics::set(&metrics.queue_depths[queue.index()], depth as u64);
                    true
                }
                None => false,
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_receiver_shows_its_waiting_items_and_the_sampler_never_holds_a_channel_open()
    {
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel::<u32>(8);
        let sampler = spawn_sampler(
            metrics.clone(),
            vec![(Queue::Publish, probe(tx.downgrade()))],
        );
        // Nobody receives: the publish stage is stalled.
        for item in 0..5 {
            tx.send(item).await.expect("room");
        }
        tokio::time::sleep(QUEUE_SAMPLE_PERIOD * 2).await;
        let depth = || Metrics::get(&metrics.queue_depths[Queue::Publish.index()]);
        assert_eq!(depth(), 5);
        rx.recv().await;
        rx.recv().await;
        tokio::time::sleep(QUEUE_SAMPLE_PERIOD).await;
        assert_eq!(depth(), 3);
        drop(tx);
        // The stage drains what is left and then sees the channel closed.
        let mut drained = 0;
        while rx.recv().await.is_some() {
            drained += 1;
        }
        assert_eq!(drained, 3);
        tokio::time::timeout(QUEUE_SAMPLE_PERIOD * 2, sampler)
            .await
            .expect("the sampler ends with its channels")
            .expect("sampler task");
    }
}
