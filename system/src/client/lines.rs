//! The lines of a `POST /results` answer (NDJSON), parsed as they arrive.

use super::ClientError;
use crate::api::ResultLine;

/// The lines of one `POST /results` answer, read as they arrive.
#[derive(Debug)]
pub struct ResultLines {
    path: String,
    /// `None` once the answer has ended or broken.
    response: Option<reqwest::Response>,
    /// Bytes received; those before `start` are consumed.
    buffer: Vec<u8>,
    start: usize,
}

impl ResultLines {
    /// Reads the lines of `response`, the answer to `POST {path}`.
    pub(super) fn new(path: String, response: reqwest::Response) -> Self {
        Self {
            path,
            response: Some(response),
            buffer: Vec::new(),
            start: 0,
        }
    }

    /// The next line; `None` once the stream has ended. A line that does not parse is an
    /// error and the lines after it still follow; a broken connection is an error that ends
    /// the stream.
    pub async fn next_line(&mut self) -> Option<Result<ResultLine, ClientError>> {
        loop {
            let unread = &self.buffer[self.start..];
            if let Some(end) = unread.iter().position(|b| *b == b'\n') {
                let line = &unread[..end];
                self.start += end + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(self.parse(line));
            }
            let Some(response) = self.response.as_mut() else {
                // The last line may lack its newline.
                let rest = std::mem::take(&mut self.buffer);
                let line = &rest[self.start..];
                self.start = 0;
                if line.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                return Some(self.parse(line));
            };
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    self.buffer.drain(..self.start);
                    self.start = 0;
                    self.buffer.extend_from_slice(&chunk);
                }
                Ok(None) => self.response = None,
                Err(source) => {
                    self.response = None;
                    self.buffer.clear();
                    self.start = 0;
                    return Some(Err(ClientError::Transport {
                        method: "POST",
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
        }
    }

    /// Every line left, until the stream ends; the first error ends it early.
    pub async fn collect(mut self) -> Result<Vec<ResultLine>, ClientError> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line?);
        }
        Ok(lines)
    }

    fn parse(&self, line: &[u8]) -> Result<ResultLine, ClientError> {
        serde_json::from_slice(line).map_err(|source| ClientError::Decode {
            method: "POST",
            path: self.path.clone(),
            source,
        })
    }
}
