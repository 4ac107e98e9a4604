//! The framed pipe between a Rust parent and its Python executor: a 4-byte big-endian
//! length, then a UTF-8 JSON message (see `system/python/faas_executor.py`).

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::task::{FunctionId, TaskId};

/// The longest result (its base64, as stored) an executor may answer: what Redis stores in
/// one value (`proto-max-bulk-len`, 512 MiB). A longer one fails its own task.
pub const MAX_RESULT_BYTES: usize = 512 << 20;

/// Frames larger than this are refused (and the executor that sent one killed): a result at
/// the limit and the message around it fit.
pub const MAX_FRAME_BYTES: usize = MAX_RESULT_BYTES + (1 << 20);

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The pipe closed cleanly between frames: the executor exited.
    #[error("the executor closed its pipe")]
    Closed,
    /// The pipe closed in the middle of a frame.
    #[error("the executor's pipe closed in the middle of a frame")]
    Incomplete,
    #[error("frame of {0} bytes is larger than the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed executor message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("executor pipe: {0}")]
    Io(#[from] std::io::Error),
}

/// The executor's greeting once it is ready to run tasks.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub ready: bool,
    pub pid: u32,
    pub python: String,
    pub dill: String,
}

/// Run one task.
#[derive(Debug, Serialize)]
pub struct RunRequest<'a> {
    pub task_id: TaskId,
    pub function_id: FunctionId,
    /// The serialized function, or `None` when the executor is believed to have it cached.
    pub function: Option<&'a str>,
    pub params: &'a str,
}

/// How a task ended in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyOutcome {
    /// `result` is the serialized return value.
    Completed,
    /// `result` is the serialized exception the function (or its deserialization) raised.
    Raised,
    /// The executor does not have the function cached; send it again with the body.
    NeedFunction,
    /// The result (or exception) was longer than [`MAX_RESULT_BYTES`]: `size` says how long.
    TooLarge,
}

/// The executor's answer to a [`RunRequest`].
#[derive(Debug, Clone, Deserialize)]
pub struct RunReply {
    pub task_id: TaskId,
    pub outcome: ReplyOutcome,
    pub result: Option<String>,
    /// With [`ReplyOutcome::TooLarge`]: the result's length.
    #[serde(default)]
    pub size: Option<u64>,
    /// The task left threads running in the executor: replace it.
    #[serde(default)]
    pub retire: bool,
    pub started_at: u64,
    pub finished_at: u64,
}

/// Writes one message.
pub async fn write_message<W, T>(w: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(message)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME_BYTES)
        .ok_or(FrameError::TooLarge(body.len()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one message.
pub async fn read_message<R, T>(r: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    // Grown as bytes arrive: a length alone (from a hostile executor) allocates nothing.
    let mut body = Vec::with_capacity(len.min(1 << 20));
    let read = (&mut *r).take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(FrameError::Incomplete);
    }
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_survives_the_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let sent = serde_json::json!({"task_id": "x", "n": [1, 2, 3]});
        let writer = tokio::spawn(async move { write_message(&mut a, &sent).await });
        let got: serde_json::Value = read_message(&mut b).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got["n"][2], 3);
    }

    #[tokio::test]
    async fn eof_between_frames_is_closed_and_inside_is_incomplete() {
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        let r: Result<serde_json::Value, _> = read_message(&mut b).await;
        assert!(matches!(r, Err(FrameError::Closed)));

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{\"a\"").await.unwrap();
        drop(a);
        let r: Result<serde_json::Value, _> = read_message(&mut b).await;
        assert!(matches!(r, Err(FrameError::Incomplete)));
    }

    #[tokio::test]
    async fn an_absurd_length_is_refused_without_allocating() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let r: Result<serde_json::Value, _> = read_message(&mut b).await;
        assert!(matches!(r, Err(FrameError::TooLarge(_))));
    }
}
