//! Bounded capture of a plugin's stdout and stderr.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps the guest when it is full; a
//! chatty plugin should lose its excess output, not its invocation. This
//! buffer keeps the first `limit` bytes and counts the rest.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Clone)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Buffer>>,
}

struct Buffer {
    bytes: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl CapturedOutput {
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Buffer {
                bytes: Vec::new(),
                limit,
                dropped: 0,
            })),
        }
    }

    /// What was kept, as text, with a note when output was cut.
    pub fn text(&self) -> String {
        let buffer = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.dropped > 0 {
            text.push_str(&format!("\n[... {} more bytes dropped]", buffer.dropped));
        }
        text
    }

    fn write(&self, data: &[u8]) {
        let mut buffer = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = buffer.limit.saturating_sub(buffer.bytes.len());
        let kept = room.min(data.len());
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += (data.len() - kept) as u64;
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write(data);
        // Report everything as written so the guest never blocks or fails.
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let out = CapturedOutput::new(5);
        out.write(b"hello world");
        out.write(b"!");
        assert_eq!(out.text(), "hello\n[... 7 more bytes dropped]");
    }
}
