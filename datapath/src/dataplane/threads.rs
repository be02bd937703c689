//! The packet threads: a fixed pool serving every active device and every
//! mux through epoll, so that a device costs memory, not a thread.
//!
//! Each thread owns an epoll instance, an eventfd to be woken by, a queue
//! of commands from the control thread and a list of sources asking to be
//! run. A *source* is a device's transmit side (its backend descriptor) or
//! a mux's receive side (its UDP socket); each is registered with exactly
//! one thread, the least loaded when it came, and only that thread runs
//! it, so a source's per-run state needs no lock. Every thread has its own
//! scratch buffers ([`Scratch`]), sized for 64 KiB super-frames, which is
//! what keeps an idle device small.
//!
//! Descriptors are level-triggered: a source runs a bounded amount of work
//! each time (a batch), and the thread goes round its other sources before
//! coming back. A source that has work left without its descriptor saying
//! so (frames released by a lookup answer, injected frames, segments
//! pending in a backend) is put on the thread's run list, by itself or by
//! whoever queued the work ([`Registration::notify`]).
//!
//! The control thread changes the set only through commands that the
//! thread carries out between two runs and acknowledges: once
//! [`Threads::remove`] returns, the source is never run again, and once
//! [`Threads::sync`] returns, every run that began before it has ended.

use super::{rx::RxScratch, tx::TxScratch};
use crate::sys::WakeFd;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::{
    collections::HashMap,
    io,
    os::fd::{AsFd, BorrowedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Condvar, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Token of a thread's own eventfd in its epoll set.
const WAKE: u64 = u64::MAX;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 64;
/// How long the control thread waits for an acknowledgment at most: a
/// bound against a thread stuck in a plugin call, not a normal delay.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// What a source asks after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum More {
    /// Nothing left that its descriptor will not announce.
    No,
    /// Work left: run it again soon, descriptor or not.
    Yes,
    /// Its descriptor failed for good: stop watching it (the source stays
    /// registered, and runs when notified, until it is removed).
    Stop,
}

/// Something a packet thread runs.
pub trait Source: Send + Sync {
    /// The descriptor whose readability calls [`Source::run`].
    fn fd(&self) -> BorrowedFd<'_>;
    /// Does a bounded amount of work.
    fn run(&self, scratch: &mut Scratch) -> More;
}

/// A packet thread's buffers, reused by every source it runs.
pub struct Scratch {
    /// The transmit side's.
    pub tx: TxScratch,
    /// The receive side's.
    pub rx: RxScratch,
}

/// A source's place in the pool: which thread runs it, under which token.
/// Clones name the same place (a notifier's copy, say); notifying a source
/// already removed does nothing.
#[derive(Clone)]
pub struct Registration {
    worker: Arc<Worker>,
    token: u64,
}

impl Registration {
    /// Asks the source's thread to run it soon (work was queued for it).
    /// Cheap, callable from any thread, never blocks on the source.
    pub fn notify(&self) {
        self.worker.notify(self.token);
    }

    /// The index of the thread that runs the source.
    pub fn thread(&self) -> usize {
        self.worker.index
    }
}

/// An acknowledgment the control thread waits for.
#[derive(Default)]
struct Ack {
    done: Mutex<Option<io::Result<()>>>,
    cv: Condvar,
}

impl Ack {
    fn set(&self, r: io::Result<()>) {
        *self.done.lock().unwrap() = Some(r);
        self.cv.notify_all();
    }

    fn wait(&self) -> io::Result<()> {
        let deadline = Instant::now() + ACK_WAIT;
        let mut done = self.done.lock().unwrap();
        loop {
            if let Some(r) = done.take() {
                return r;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "a packet thread did not answer within 5 s",
                ));
            }
            done = self.cv.wait_timeout(done, left).unwrap().0;
        }
    }
}

enum Cmd {
    Add(u64, Arc<dyn Source>, Arc<Ack>),
    Remove(u64, Arc<Ack>),
    Sync(Arc<Ack>),
}

struct Worker {
    index: usize,
    /// How long the thread keeps polling after its last work before it
    /// sleeps in `epoll_wait` (zero: it sleeps at once).
    busy_poll: Duration,
    epoll: Epoll,
    wake: WakeFd,
    cmds: Mutex<Vec<Cmd>>,
    /// Tokens of sources asking to be run.
    ready: Mutex<Vec<u64>>,
    /// Sources registered: the load the placement balances.
    load: AtomicUsize,
    stop: AtomicBool,
    /// The thread has ended: commands are answered at once (under the
    /// `cmds` lock, so that none is left unanswered).
    exited: AtomicBool,
}

impl Worker {
    fn kick(&self) {
        self.wake.wake();
    }

    fn notify(&self, token: u64) {
        let mut r = self.ready.lock().unwrap();
        let first = r.is_empty();
        r.push(token);
        drop(r);
        if first {
            self.kick();
        }
    }

    fn command(&self, c: Cmd) {
        let mut cmds = self.cmds.lock().unwrap();
        if self.exited.load(Ordering::Acquire) {
            drop(cmds);
            answer_stopped(c);
            return;
        }
        cmds.push(c);
        drop(cmds);
        self.kick();
    }

    /// Watches `fd` for input, its events named `token`.
    fn watch(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, token);
        Ok(self.epoll.add(fd, ev)?)
    }

    /// Stops watching `fd`.
    fn unwatch(&self, fd: BorrowedFd<'_>) {
        let _ = self.epoll.delete(fd);
    }

    fn run(self: Arc<Self>, mut scratch: Scratch) {
        let mut sources: HashMap<u64, Arc<dyn Source>> = HashMap::new();
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut again: Vec<u64> = Vec::new();
        let mut ready: Vec<u64> = Vec::new();
        // Until when the thread polls instead of sleeping (busy polling).
        let mut poll_until: Option<Instant> = None;
        while !self.stop.load(Ordering::Acquire) {
            // Sources with work left are run again without waiting; within
            // the busy-poll window after the last work, the thread looks
            // again at once instead of sleeping, so that the next frame
            // does not wait for the processor to wake.
            let polling = again.is_empty() && poll_until.is_some_and(|t| Instant::now() < t);
            let timeout = if !again.is_empty() || polling {
                EpollTimeout::ZERO
            } else {
                EpollTimeout::NONE
            };
            let n = self.epoll.wait(&mut events, timeout).unwrap_or(0);
            if n > 0 && !self.busy_poll.is_zero() {
                poll_until = Some(Instant::now() + self.busy_poll);
            } else if polling && n == 0 {
                // Nothing yet: let whatever else wants this processor (the
                // applications whose frames these are) run first.
                std::thread::yield_now();
            }
            let mut woken = false;
            ready.clear();
            std::mem::swap(&mut ready, &mut again);
            for ev in &events[..n] {
                if ev.data() == WAKE {
                    woken = true;
                } else {
                    ready.push(ev.data());
                }
            }
            if woken {
                self.wake.drain();
                ready.append(&mut self.ready.lock().unwrap());
            }
            // Each source runs once per round however often it was named.
            ready.sort_unstable();
            ready.dedup();
            for token in &ready {
                if let Some(src) = sources.get(token) {
                    match src.run(&mut scratch) {
                        More::No => {}
                        More::Yes => again.push(*token),
                        More::Stop => self.unwatch(src.fd()),
                    }
                }
            }
            // Commands last: a Sync or Remove acknowledged here comes after
            // every run that may have begun before it was queued.
            if woken {
                let cmds = std::mem::take(&mut *self.cmds.lock().unwrap());
                for c in cmds {
                    match c {
                        Cmd::Add(token, src, ack) => {
                            let r = self.watch(src.fd(), token);
                            if r.is_ok() {
                                sources.insert(token, src);
                                // Whatever was waiting before it joined.
                                again.push(token);
                            }
                            ack.set(r);
                        }
                        Cmd::Remove(token, ack) => {
                            if let Some(src) = sources.remove(&token) {
                                self.unwatch(src.fd());
                            }
                            again.retain(|t| *t != token);
                            ack.set(Ok(()));
                        }
                        Cmd::Sync(ack) => ack.set(Ok(())),
                    }
                }
            }
        }
        // Stopping: sources are dropped with the map; waiters are answered,
        // now and from now on.
        let mut cmds = self.cmds.lock().unwrap();
        self.exited.store(true, Ordering::Release);
        for c in std::mem::take(&mut *cmds) {
            answer_stopped(c);
        }
    }
}

/// Answers a command the stopped thread will never carry out: nothing runs
/// any more, so a removal or a sync is done; an addition fails.
fn answer_stopped(c: Cmd) {
    match c {
        Cmd::Add(_, _, ack) => ack.set(Err(io::Error::other("the packet threads stopped"))),
        Cmd::Remove(_, ack) | Cmd::Sync(ack) => ack.set(Ok(())),
    }
}

/// The pool of packet threads.
pub struct Threads {
    workers: Vec<Arc<Worker>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    next_token: AtomicU64,
}

impl Threads {
    /// Starts `n` packet threads (at least one), each making its scratch
    /// buffers with `scratch` and polling for `busy_poll` after its last
    /// work before it sleeps.
    pub fn start(n: usize, busy_poll: Duration, scratch: fn() -> Scratch) -> io::Result<Threads> {
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for index in 0..n.max(1) {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
            let wake = WakeFd::new()?;
            let w = Arc::new(Worker {
                index,
                busy_poll,
                epoll,
                wake,
                cmds: Mutex::new(Vec::new()),
                ready: Mutex::new(Vec::new()),
                load: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
                exited: AtomicBool::new(false),
            });
            w.watch(w.wake.as_fd(), WAKE)?;
            let runner = w.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("packet-{index}"))
                    .spawn(move || runner.run(scratch()))?,
            );
            workers.push(w);
        }
        Ok(Threads {
            workers,
            handles: Mutex::new(handles),
            next_token: AtomicU64::new(0),
        })
    }

    /// Number of threads.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether the pool has no thread (never: [`Threads::start`] makes one).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Registers `src` with the least loaded thread; returns once that
    /// thread watches its descriptor.
    pub fn add(&self, src: Arc<dyn Source>) -> io::Result<Registration> {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .expect("at least one packet thread")
            .clone();
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let ack = Arc::new(Ack::default());
        worker.command(Cmd::Add(token, src, ack.clone()));
        ack.wait()?;
        worker.load.fetch_add(1, Ordering::Relaxed);
        Ok(Registration { worker, token })
    }

    /// Unregisters a source; once this returns its thread never runs it
    /// again and holds no reference to it.
    pub fn remove(&self, reg: Registration) {
        let ack = Arc::new(Ack::default());
        reg.worker.command(Cmd::Remove(reg.token, ack.clone()));
        if let Err(e) = ack.wait() {
            tracing::error!("packet thread {}: {e}", reg.worker.index);
        }
        reg.worker.load.fetch_sub(1, Ordering::Relaxed);
    }

    /// Waits until every run of `reg`'s thread that began before this call
    /// has ended (a source's settings were just changed).
    pub fn sync(&self, reg: &Registration) {
        let ack = Arc::new(Ack::default());
        reg.worker.command(Cmd::Sync(ack.clone()));
        if let Err(e) = ack.wait() {
            tracing::error!("packet thread {}: {e}", reg.worker.index);
        }
    }

    /// Stops every thread; sources still registered are dropped.
    pub fn shutdown(&self) {
        for w in &self.workers {
            w.stop.store(true, Ordering::Release);
            w.kick();
        }
        for h in std::mem::take(&mut *self.handles.lock().unwrap()) {
            let _ = h.join();
        }
    }

    /// Sources registered with each thread.
    pub fn loads(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{rx::RxScratch, tx::TxScratch};
    use std::sync::atomic::AtomicI32;

    /// A source that is an eventfd: each run drains it and notes the
    /// thread that ran it.
    struct Bell {
        fd: WakeFd,
        tid: AtomicI32,
    }

    impl Source for Bell {
        fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }

        fn run(&self, _: &mut Scratch) -> More {
            self.fd.drain();
            self.tid
                .store(nix::unistd::gettid().as_raw(), Ordering::Release);
            More::No
        }
    }

    fn scratch() -> Scratch {
        Scratch {
            tx: TxScratch::new(),
            rx: RxScratch::new(),
        }
    }

    /// Starts one thread polling for `busy_poll`, rings a bell on it once
    /// and returns the pool and the id of the thread that answered.
    fn ring(busy_poll: Duration) -> (Threads, Arc<Bell>, i32) {
        let threads = Threads::start(1, busy_poll, scratch).unwrap();
        let bell = Arc::new(Bell {
            fd: WakeFd::new().unwrap(),
            tid: AtomicI32::new(0),
        });
        threads.add(bell.clone()).unwrap();
        bell.fd.wake();
        let deadline = Instant::now() + Duration::from_secs(10);
        let tid = loop {
            let tid = bell.tid.load(Ordering::Acquire);
            if tid != 0 {
                break tid;
            }
            assert!(Instant::now() < deadline, "the bell was not answered");
            std::thread::sleep(Duration::from_millis(1));
        };
        (threads, bell, tid)
    }

    /// The scheduler state of thread `tid` of this process (`R`, `S`, ...).
    fn state(tid: i32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // The state follows the command name, which is in parentheses.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.chars().next().unwrap()
    }

    /// Waits (bounded) until thread `tid` sleeps.
    fn sleeps_eventually(tid: i32) -> bool {
        (0..2000).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            state(tid) == 'S'
        })
    }

    #[test]
    fn without_busy_polling_a_thread_sleeps_once_its_work_is_done() {
        let (threads, _bell, tid) = ring(Duration::ZERO);
        assert!(sleeps_eventually(tid), "the packet thread never slept");
        threads.shutdown();
    }

    #[test]
    fn a_busy_polling_thread_stays_awake_after_work_then_sleeps() {
        // A long window: the thread must not sleep while it lasts.
        let (threads, _bell, tid) = ring(Duration::from_secs(60));
        for _ in 0..50 {
            assert_ne!(state(tid), 'S', "a busy-polling thread slept");
            std::thread::sleep(Duration::from_millis(2));
        }
        threads.shutdown();
        // A short one: once it has passed, the thread sleeps.
        let (threads, bell, tid) = ring(Duration::from_millis(50));
        assert!(sleeps_eventually(tid), "the busy-poll window never ended");
        // More work opens the window again.
        bell.fd.wake();
        assert!(
            (0..2000).any(|_| {
                std::thread::sleep(Duration::from_millis(1));
                state(tid) != 'S'
            }),
            "new work did not wake the thread"
        );
        threads.shutdown();
    }
}
