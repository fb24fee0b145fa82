//! A scripted HTTP/1.1 server on a real socket: each connection gets the next reply,
//! written step by step (bytes, pauses, an abrupt close), so tests can produce every
//! failure a provider can: errors, stalls, streams cut in the middle.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    reason = "test support: each test uses a part, and a failure here is a test failure"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_llm::{ApiKey, Endpoint, Format, ProviderClient, Timeouts};
use holdfast_policy::{Clock, SystemClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One step of a reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Wait this long.
    Pause(Duration),
}

/// A whole reply; the connection closes after its last step.
#[derive(Debug, Clone)]
pub struct Reply(pub Vec<Step>);

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: serde_json::Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn path(&self) -> String {
        self.head.split(' ').nth(1).unwrap_or_default().to_owned()
    }
}

/// A running scripted server.
pub struct Server {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn request(&self, i: usize) -> Received {
        self.received.lock().unwrap()[i].clone()
    }
}

/// Serves `replies` in order, one per connection (the last one repeats).
pub async fn serve(replies: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((socket, _)) = listener.accept().await {
            let reply = replies[n.min(replies.len() - 1)].clone();
            n += 1;
            let log = Arc::clone(&log);
            tokio::spawn(async move { answer(socket, reply, log).await });
        }
    });
    Server { addr, received }
}

async fn answer(mut socket: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Received>>>) {
    let clock = SystemClock::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..]).unwrap_or(serde_json::Value::Null);
    log.lock().unwrap().push(Received { head, body });
    for step in reply.0 {
        match step {
            Step::Write(bytes) => {
                if socket.write_all(&bytes).await.is_err() {
                    return;
                }
                let _ = socket.flush().await;
            }
            Step::Pause(d) => clock.sleep_until(clock.now() + d).await,
        }
    }
    let _ = socket.shutdown().await;
}

/// A complete JSON answer with `status` and extra header lines.
pub fn json(status: u16, headers: &[(&str, &str)], body: &serde_json::Value) -> Reply {
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    Reply(vec![Step::Write(format!("{head}{body}").into_bytes())])
}

/// The head of a chunked event-stream answer.
pub fn sse_head() -> Step {
    Step::Write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_vec(),
    )
}

/// One HTTP chunk holding `text`.
pub fn chunk(text: &str) -> Step {
    Step::Write(format!("{:x}\r\n{text}\r\n", text.len()).into_bytes())
}

/// An SSE `data:` event as one HTTP chunk.
pub fn data(json: &serde_json::Value) -> Step {
    chunk(&format!("data: {json}\n\n"))
}

/// A named SSE event as one HTTP chunk (Anthropic style).
pub fn event(json: &serde_json::Value) -> Step {
    let name = json["type"].as_str().unwrap_or("message");
    chunk(&format!("event: {name}\ndata: {json}\n\n"))
}

/// The last HTTP chunk: the body ends cleanly.
pub fn end() -> Step {
    Step::Write(b"0\r\n\r\n".to_vec())
}

pub fn pause(ms: u64) -> Step {
    Step::Pause(Duration::from_millis(ms))
}

pub fn client() -> ProviderClient {
    ProviderClient::new(Arc::new(SystemClock::new()))
}

pub const KEY: &str = "sk-test-0123456789abcdef";

pub fn endpoint(server: &Server, format: Format) -> Endpoint {
    Endpoint {
        format,
        base_url: server.base_url(),
        api_key: Some(ApiKey::new(KEY)),
        model: "target-model".to_owned(),
        timeouts: Timeouts {
            connect: Duration::from_millis(500),
            first_byte: Duration::from_millis(300),
            learns_first_byte: false,
            idle: Duration::from_millis(300),
            total: Duration::from_secs(3),
        },
        azure_api_version: None,
    }
}

pub fn chat_request(stream: bool) -> holdfast_llm::openai::ChatRequest {
    serde_json::from_value(serde_json::json!({
        "model": "smart",
        "messages": [{"role": "user", "content": "Say hi"}],
        "stream": stream
    }))
    .unwrap()
}
