//! A slowloris attack: many connections, each sending a request head one byte a second
//! and never finishing it, reconnecting whenever the server closes one.
//!
//! It records how long the server let each connection live, so that a benchmark can
//! check the connections were closed after the server's head timeout (not before, and
//! not much after), and whether the server ever answered one (it must not: no head was
//! ever complete).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::measure::{Stopwatch, pause};

/// The start of every head; then header bytes, one a second, forever.
const HEAD: &[u8] = b"GET /health HTTP/1.1\r\nhost: holdfast\r\nx-slow: ";

/// What the attack saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Connections opened.
    pub opened: u64,
    /// How long each connection the server closed had lived, sorted.
    pub lifetimes: Vec<Duration>,
    /// Connections the server answered (bytes came back): should be none.
    pub answered: u64,
    /// Connections that could not be opened.
    pub refused: u64,
}

/// A running attack; [`Attack::stop`] ends it. The attackers run on a thread and a
/// runtime of their own, so that they do not delay the client being measured in the
/// benchmark's runtime (a real attack comes from other machines).
pub struct Attack {
    stop: Arc<AtomicBool>,
    stopping: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    opened: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    lifetimes: Mutex<Vec<Duration>>,
}

impl Attack {
    /// Starts `connections` attackers on `addr`, their first connections spread over
    /// `ramp` (as a real attack's would be, and so that their bytes are spread over
    /// each second).
    pub fn start(addr: SocketAddr, connections: usize, ramp: Duration) -> anyhow::Result<Attack> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let (stopping, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn({
            let (stop, shared) = (Arc::clone(&stop), Arc::clone(&shared));
            move || {
                runtime.block_on(async move {
                    let mut tasks = JoinSet::new();
                    for i in 0..connections {
                        let delay = ramp.mul_f64(i as f64 / connections.max(1) as f64);
                        let (stop, shared) = (Arc::clone(&stop), Arc::clone(&shared));
                        tasks.spawn(async move {
                            pause(delay).await;
                            while !stop.load(Ordering::Relaxed) {
                                attack_once(addr, &stop, &shared).await;
                            }
                        });
                    }
                    let _ = stopped.await;
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                });
            }
        });
        Ok(Attack {
            stop,
            stopping: Some(stopping),
            thread: Some(thread),
            shared,
        })
    }

    /// Connections open or being opened right now, roughly: opened minus closed.
    pub fn open(&self) -> u64 {
        let closed = self.shared.lifetimes.lock().map_or(0, |l| l.len() as u64);
        self.shared
            .opened
            .load(Ordering::Relaxed)
            .saturating_sub(closed)
    }

    /// Stops every attacker (their connections are dropped) and returns what they saw.
    pub async fn stop(mut self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(stopping) = self.stopping.take() {
            let _ = stopping.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let mut lifetimes = self
            .shared
            .lifetimes
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        lifetimes.sort_unstable();
        Outcome {
            opened: self.shared.opened.load(Ordering::Relaxed),
            lifetimes,
            answered: self.shared.answered.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
        }
    }
}

/// One connection: the head's start, then a byte a second until the server closes it.
async fn attack_once(addr: SocketAddr, stop: &AtomicBool, shared: &Shared) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        pause(Duration::from_secs(1)).await;
        return;
    };
    shared.opened.fetch_add(1, Ordering::Relaxed);
    let lived = Stopwatch::start();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for byte in HEAD.iter().chain(std::iter::repeat(&b'a')) {
            if stop.load(Ordering::Relaxed) || writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            pause(Duration::from_secs(1)).await;
        }
        // Closed (the reader sees it) or stopping.
        std::future::pending::<()>().await;
    };
    let closed = async {
        let mut buf = [0u8; 512];
        let mut answered = false;
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return answered,
                Ok(_) => answered = true,
            }
        }
    };
    tokio::select! {
        answered = closed => {
            if answered {
                shared.answered.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut lifetimes) = shared.lifetimes.lock() {
                lifetimes.push(lived.elapsed());
            }
        }
        () = trickle => {}
    }
}
