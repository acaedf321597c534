//! The server's input, watched for its end: when the client closes stdin, the calls in
//! flight are cancelled at once, so their answers are written and the process exits
//! promptly instead of waiting for them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

pub struct WatchedInput<R> {
    inner: R,
    on_end: CancellationToken,
}

impl<R> WatchedInput<R> {
    /// `on_end` is cancelled at end of input or on a read error.
    pub fn new(inner: R, on_end: CancellationToken) -> WatchedInput<R> {
        WatchedInput { inner, on_end }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WatchedInput<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &res {
            Poll::Ready(Ok(())) if wanted && buf.filled().len() == before => self.on_end.cancel(),
            Poll::Ready(Err(_)) => self.on_end.cancel(),
            _ => {}
        }
        res
    }
}
