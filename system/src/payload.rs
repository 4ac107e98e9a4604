//! Client payloads: base64 text (the `codecs` form, newlines allowed) that must decode to a
//! pickle stream.

use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{DecodeError, Engine as _, alphabet};

use crate::pickle::{PickleError, validate};

/// Standard alphabet with optional padding; trailing bits stay strict because every real
/// encoder zeroes them, which also rejects many plain words early.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a client payload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload is empty or whitespace only.
    #[error("payload is empty")]
    Empty,
    /// The payload is not base64; carries the decoder's reason.
    #[error("payload is not valid base64: {0}")]
    NotBase64(String),
    /// The payload is base64 but the decoded bytes are not a pickle stream.
    #[error("payload is not a pickle stream: {}", pickle_reason(.0))]
    NotPickle(#[from] PickleError),
}

/// Decodes base64 (ignoring ASCII whitespace: \n, \r, space, \t; padding optional) and validates
/// the pickle. Returns the raw pickle bytes.
pub fn decode_payload(text: &str) -> Result<Vec<u8>, PayloadError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(PayloadError::Empty);
    }
    let bytes = DECODER
        .decode(&compact)
        .map_err(|err| PayloadError::NotBase64(base64_reason(err, text)))?;
    validate(&bytes)?;
    Ok(bytes)
}

/// Encodes bytes as base64 in the standard alphabet with padding and no newlines (what clients
/// decode with `codecs.decode`/`base64.b64decode`).
pub fn encode_payload(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The decoder's reason, with offsets counted in the original text (whitespace included).
fn base64_reason(err: DecodeError, text: &str) -> String {
    let offset = |compact_index: usize| {
        text.bytes()
            .enumerate()
            .filter(|(_, b)| !b.is_ascii_whitespace())
            .nth(compact_index)
            .map_or(compact_index, |(i, _)| i)
    };
    let show = |byte: u8| match byte {
        0x21..=0x7e => format!("'{}'", char::from(byte)),
        _ => format!("byte 0x{byte:02x}"),
    };
    match err {
        DecodeError::InvalidByte(at, byte) => {
            format!("invalid character {} at offset {}", show(byte), offset(at))
        }
        DecodeError::InvalidLastSymbol {
            offset: at, symbol, ..
        } => {
            format!(
                "invalid final character {} at offset {}",
                show(symbol),
                offset(at)
            )
        }
        DecodeError::InvalidLength(len) => {
            format!("{len} base64 characters cannot encode whole bytes")
        }
        DecodeError::InvalidPadding => "invalid padding".to_owned(),
    }
}

/// Drops the validator's own "not a pickle stream: " prefix, which this message already says.
fn pickle_reason(err: &PickleError) -> String {
    let reason = err.to_string();
    match reason.strip_prefix("not a pickle stream: ") {
        Some(rest) => rest.to_owned(),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `codecs.encode(dill.dumps(lambda x: x + 1), "base64").decode()` (dill 0.4.1, Python 3.11).
    const CODECS_LAMBDA: &str = "gASVzAAAAAAAAACMCmRpbGwuX2RpbGyUjBBfY3JlYXRlX2Z1bmN0aW9ulJOUKGgAjAxfY3JlYXRl\nX2NvZGWUk5QoQwCUSwFLAEsASwFLAksDQwyXAHwAZAF6AAAAUwCUTksBhpQpjAF4lIWUjAljbGll\nbnQucHmUjAg8bGFtYmRhPpRoC0sIQwqAAJABkEGRBYAAlGgFKSl0lFKUY19fYnVpbHRpbl9fCl9f\nbWFpbl9fCmgLTk50lFKUfZR9lIwPX19hbm5vdGF0aW9uc19flH2Uc4aUYi4=\n";

    #[test]
    fn decodes_python_codecs_output() {
        let bytes = decode_payload(CODECS_LAMBDA).unwrap();
        assert_eq!(bytes.len(), 215);
        assert!(bytes.starts_with(b"\x80\x04\x95"));
        assert!(bytes.ends_with(b"b."));
        let crlf = CODECS_LAMBDA.replace('\n', "\r\n");
        assert_eq!(decode_payload(&crlf).unwrap(), bytes);
        let unpadded = CODECS_LAMBDA.trim_end().trim_end_matches('=');
        assert_eq!(decode_payload(unpadded).unwrap(), bytes);
    }

    #[test]
    fn rejects_empty() {
        for text in ["", " \n\t\r\n"] {
            let err = decode_payload(text).unwrap_err();
            assert!(matches!(err, PayloadError::Empty), "{err:?}");
            assert_eq!(err.to_string(), "payload is empty");
        }
    }

    #[test]
    fn rejects_non_base64() {
        let err = decode_payload("not base64!!").unwrap_err();
        assert!(matches!(err, PayloadError::NotBase64(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "payload is not valid base64: invalid character '!' at offset 10"
        );
        let err = decode_payload("payload").unwrap_err();
        assert!(matches!(err, PayloadError::NotBase64(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "payload is not valid base64: invalid final character 'd' at offset 6"
        );
        let err = decode_payload("gASV\nzAAAA").unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload is not valid base64: 9 base64 characters cannot encode whole bytes"
        );
        let err = decode_payload("gA=SV").unwrap_err();
        assert!(matches!(err, PayloadError::NotBase64(_)), "{err:?}");
        let err = decode_payload("“x”").unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload is not valid base64: invalid character byte 0xe2 at offset 0"
        );
    }

    #[test]
    fn rejects_base64_that_is_not_a_pickle() {
        let json = encode_payload(br#"{"fn": "lambda x: x", "args": [1]}"#);
        let err = decode_payload(&json).unwrap_err();
        assert!(
            matches!(err, PayloadError::NotPickle(PickleError::NoProtocolHeader)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "payload is not a pickle stream: it does not start with a protocol header (PROTO opcode)"
        );
        let random = encode_payload(&[0x13, 0x37, 0xc0, 0xff, 0xee, 0x00, 0x42]);
        assert!(matches!(
            decode_payload(&random),
            Err(PayloadError::NotPickle(_))
        ));
        let truncated = encode_payload(b"\x80\x04X\x05\x00\x00\x00ab");
        assert_eq!(
            decode_payload(&truncated).unwrap_err().to_string(),
            "payload is not a pickle stream: pickle stream truncated inside BINUNICODE at byte 2"
        );
    }

    #[test]
    fn encode_decode_round_trip() {
        let pickle = decode_payload(CODECS_LAMBDA).unwrap();
        let text = encode_payload(&pickle);
        assert!(!text.contains('\n'));
        assert!(text.ends_with('='));
        assert_eq!(text, CODECS_LAMBDA.replace('\n', ""));
        assert_eq!(decode_payload(&text).unwrap(), pickle);
        let failure = crate::pickle::worker_failure_pickle("boom");
        assert_eq!(decode_payload(&encode_payload(&failure)).unwrap(), failure);
    }
}
