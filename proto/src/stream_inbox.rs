//! A stream's inbox: the events the session driver delivers to one stream, waiting for the
//! pump that carries it.
//!
//! Every carried connection has one, so its size is paid per held connection on both ends.
//! A tokio unbounded channel costs about 1.8 KiB before its first message (a cache-padded
//! channel header and a first block of 32 slots); this is one small allocation (under
//! 100 bytes) plus a queue that is only as large as what is waiting, and is given back
//! once a burst has drained. There is exactly one producer (the session driver) and one
//! consumer (the stream's pump), so a plain mutex around the queue and the consumer's
//! waker is all the synchronisation needed; it is never contended for longer than a push.

use crate::stream_contract::StreamEvent;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A drained queue keeps its buffer up to this many events; a larger one (left by a burst)
/// is freed, so an idle stream holds no more than a few events' worth.
const KEPT_CAPACITY: usize = 8;

struct State {
    queue: VecDeque<StreamEvent>,
    /// The consumer's waker while it waits; taken by the first event that arrives.
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The critical sections cannot panic midway (a push, a pop, a flag), so a poisoned
        // lock still guards consistent state.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates a stream's inbox: the driver keeps the sender, the stream's handle the receiver.
pub(crate) fn inbox() -> (InboxSender, Inbox) {
    let shared = Arc::new(Shared(Mutex::new(State {
        queue: VecDeque::new(),
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    })));
    (InboxSender(shared.clone()), Inbox(shared))
}

/// The driver's end. Dropping it tells the stream that nothing more will come.
pub(crate) struct InboxSender(Arc<Shared>);

/// The receiver was dropped: the stream is gone and the event was not delivered.
#[derive(Debug)]
pub(crate) struct StreamGone;

impl InboxSender {
    /// Queues an event for the stream and wakes its pump if it waits.
    pub(crate) fn send(&self, event: StreamEvent) -> Result<(), StreamGone> {
        let waker = {
            let mut state = self.0.lock();
            if state.receiver_gone {
                return Err(StreamGone);
            }
            state.queue.push_back(event);
            state.waker.take()
        };
        // Woken outside the lock, so the pump never finds it held.
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl Drop for InboxSender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl fmt::Debug for InboxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxSender").finish_non_exhaustive()
    }
}

/// The stream's end, read by the pump that carries it.
pub(crate) struct Inbox(Arc<Shared>);

impl Inbox {
    /// The next event; `Ready(None)` once the driver is gone and everything it sent has been
    /// taken.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let mut state = self.0.lock();
        if let Some(event) = state.queue.pop_front() {
            if state.queue.is_empty() && state.queue.capacity() > KEPT_CAPACITY {
                state.queue = VecDeque::new();
            }
            return Poll::Ready(Some(event));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next event (see [`Inbox::poll_recv`]).
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<StreamEvent> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver_gone = true;
        state.waker = None;
        // Bytes nobody will write are freed now, not when the driver drops its end.
        state.queue = VecDeque::new();
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.0.lock().queue.len();
        f.debug_struct("Inbox").field("waiting", &waiting).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn the_shared_state_stays_small() {
        // Paid once per carried connection on each end: the reason this is not a channel.
        assert!(
            std::mem::size_of::<Shared>() <= 96,
            "{} bytes",
            std::mem::size_of::<Shared>()
        );
    }

    #[test]
    fn events_arrive_in_order_then_none_once_the_sender_is_gone() {
        let (tx, mut rx) = inbox();
        tx.send(StreamEvent::Data(Bytes::from_static(b"a")))
            .unwrap();
        tx.send(StreamEvent::Credit(7)).unwrap();
        tx.send(StreamEvent::Fin).unwrap();
        drop(tx);
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(
            matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(StreamEvent::Data(b))) if &b[..] == b"a")
        );
        assert!(matches!(
            rx.poll_recv(&mut cx),
            Poll::Ready(Some(StreamEvent::Credit(7)))
        ));
        assert!(matches!(
            rx.poll_recv(&mut cx),
            Poll::Ready(Some(StreamEvent::Fin))
        ));
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_waiting_reader_is_woken_once_per_wait() {
        let (tx, mut rx) = inbox();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.send(StreamEvent::Credit(1)).unwrap();
        tx.send(StreamEvent::Credit(2)).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one wake for the burst");
        assert!(rx.poll_recv(&mut cx).is_ready());
        assert!(rx.poll_recv(&mut cx).is_ready());
        assert!(rx.poll_recv(&mut cx).is_pending());
        drop(tx);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "the sender going away wakes the reader"
        );
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn sending_to_a_dropped_stream_fails_and_keeps_nothing() {
        let (tx, rx) = inbox();
        tx.send(StreamEvent::Data(Bytes::from(vec![0u8; 1000])))
            .unwrap();
        drop(rx);
        assert!(tx.send(StreamEvent::Fin).is_err());
        assert_eq!(tx.0.lock().queue.capacity(), 0, "queued bytes were freed");
    }

    #[test]
    fn a_drained_burst_gives_its_buffer_back() {
        let (tx, mut rx) = inbox();
        for i in 0..100 {
            tx.send(StreamEvent::Credit(i)).unwrap();
        }
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..100 {
            assert!(rx.poll_recv(&mut cx).is_ready());
        }
        assert!(rx.poll_recv(&mut cx).is_pending());
        assert!(tx.0.lock().queue.capacity() <= KEPT_CAPACITY);
    }

    #[tokio::test]
    async fn a_reader_on_another_task_gets_what_is_sent() {
        let (tx, mut rx) = inbox();
        let reader = tokio::spawn(async move {
            let mut n = 0u32;
            while let Some(ev) = rx.recv().await {
                if let StreamEvent::Credit(c) = ev {
                    n += c;
                }
            }
            n
        });
        for _ in 0..1000 {
            tx.send(StreamEvent::Credit(1)).unwrap();
            tokio::task::yield_now().await;
        }
        drop(tx);
        assert_eq!(reader.await.unwrap(), 1000);
    }
}
