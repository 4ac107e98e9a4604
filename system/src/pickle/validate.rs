//! Structural validation of pickle streams: walks the opcodes of CPython's pickletools table
//! without building any object, so garbage is rejected before a Python worker ever sees it.

/// Why a byte string is not a well-formed pickle stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickleError {
    /// The input does not start with a PROTO opcode (protocols 0 and 1 have none).
    #[error("not a pickle stream: it does not start with a protocol header (PROTO opcode)")]
    NoProtocolHeader,
    /// A PROTO opcode names a protocol outside 2..=5 (header) or 0..=5 (later in the stream).
    #[error("unsupported pickle protocol {0}")]
    UnsupportedProtocol(u8),
    /// A byte that is no opcode of protocols 0–5 sits where an opcode is expected.
    #[error("unknown pickle opcode {opcode:#04x} at byte {offset}")]
    UnknownOpcode { opcode: u8, offset: usize },
    /// The input ends inside the argument of the opcode at `offset`.
    #[error("pickle stream truncated inside {opcode} at byte {offset}")]
    Truncated { opcode: &'static str, offset: usize },
    /// A signed length prefix (BINSTRING, LONG4) is negative.
    #[error("negative length in {opcode} at byte {offset}")]
    NegativeLength { opcode: &'static str, offset: usize },
    /// An opcode that pops up to a MARK runs while no MARK is open.
    #[error("{opcode} at byte {offset} has no matching MARK")]
    MissingMark { opcode: &'static str, offset: usize },
    /// The input ends without a STOP opcode.
    #[error("pickle stream has no STOP opcode")]
    NoStop,
    /// Bytes follow the STOP opcode.
    #[error("{0} trailing bytes after the STOP opcode")]
    TrailingBytes(usize),
}

/// The argument that follows an opcode.
#[derive(Clone, Copy)]
enum Arg {
    None,
    Fixed(usize),
    Line,
    TwoLines,
    /// Little-endian unsigned length prefix of this many bytes, then that many bytes.
    Counted(usize),
    /// Like `Counted`, but the prefix is a signed int4.
    SignedCounted(usize),
    /// u64 frame length; the frame's bytes are ordinary opcodes, so only the prefix is skipped.
    Frame,
}

/// What an opcode does to the MARK stack.
#[derive(Clone, Copy)]
enum Marks {
    Keep,
    Push,
    Pop,
}

#[derive(Clone, Copy)]
struct Op {
    name: &'static str,
    arg: Arg,
    marks: Marks,
}

const PROTO: u8 = 0x80;
const STOP: u8 = b'.';

/// CPython's `pickletools.opcodes`, protocols 0–5.
#[rustfmt::skip]
const OPS: &[(u8, &str, Arg, Marks)] = {
    use Arg::{Counted as C, Fixed as F, Line as L, None as N, SignedCounted as S};
    use Marks::{Keep as K, Pop as P, Push};
    &[
        (b'(', "MARK", N, Push), (b'.', "STOP", N, K), (b'0', "POP", N, K),
        (b'1', "POP_MARK", N, P), (b'2', "DUP", N, K), (b'F', "FLOAT", L, K),
        (b'I', "INT", L, K), (b'J', "BININT", F(4), K), (b'K', "BININT1", F(1), K),
        (b'L', "LONG", L, K), (b'M', "BININT2", F(2), K), (b'N', "NONE", N, K),
        (b'P', "PERSID", L, K), (b'Q', "BINPERSID", N, K), (b'R', "REDUCE", N, K),
        (b'S', "STRING", L, K), (b'T', "BINSTRING", S(4), K), (b'U', "SHORT_BINSTRING", C(1), K),
        (b'V', "UNICODE", L, K), (b'X', "BINUNICODE", C(4), K), (b'a', "APPEND", N, K),
        (b'b', "BUILD", N, K), (b'c', "GLOBAL", Arg::TwoLines, K), (b'd', "DICT", N, P),
        (b'}', "EMPTY_DICT", N, K), (b'e', "APPENDS", N, P), (b'g', "GET", L, K),
        (b'h', "BINGET", F(1), K), (b'i', "INST", Arg::TwoLines, P), (b'j', "LONG_BINGET", F(4), K),
        (b'l', "LIST", N, P), (b']', "EMPTY_LIST", N, K), (b'o', "OBJ", N, P),
        (b'p', "PUT", L, K), (b'q', "BINPUT", F(1), K), (b'r', "LONG_BINPUT", F(4), K),
        (b's', "SETITEM", N, K), (b't', "TUPLE", N, P), (b')', "EMPTY_TUPLE", N, K),
        (b'u', "SETITEMS", N, P), (b'G', "BINFLOAT", F(8), K), (PROTO, "PROTO", F(1), K),
        (0x81, "NEWOBJ", N, K), (0x82, "EXT1", F(1), K), (0x83, "EXT2", F(2), K),
        (0x84, "EXT4", F(4), K), (0x85, "TUPLE1", N, K), (0x86, "TUPLE2", N, K),
        (0x87, "TUPLE3", N, K), (0x88, "NEWTRUE", N, K), (0x89, "NEWFALSE", N, K),
        (0x8a, "LONG1", C(1), K), (0x8b, "LONG4", S(4), K), (b'B', "BINBYTES", C(4), K),
        (b'C', "SHORT_BINBYTES", C(1), K), (0x8c, "SHORT_BINUNICODE", C(1), K),
        (0x8d, "BINUNICODE8", C(8), K), (0x8e, "BINBYTES8", C(8), K), (0x8f, "EMPTY_SET", N, K),
        (0x90, "ADDITEMS", N, P), (0x91, "FROZENSET", N, P), (0x92, "NEWOBJ_EX", N, K),
        (0x93, "STACK_GLOBAL", N, K), (0x94, "MEMOIZE", N, K), (0x95, "FRAME", Arg::Frame, K),
        (0x96, "BYTEARRAY8", C(8), K), (0x97, "NEXT_BUFFER", N, K), (0x98, "READONLY_BUFFER", N, K),
    ]
};

/// `OPS` indexed by opcode byte.
static TABLE: [Option<Op>; 256] = {
    let mut table = [None; 256];
    let mut i = 0;
    while i < OPS.len() {
        let (byte, name, arg, marks) = OPS[i];
        table[byte as usize] = Some(Op { name, arg, marks });
        i += 1;
    }
    table
};

enum Fault {
    Truncated,
    Negative,
}

/// Walks the opcode stream: protocol header (PROTO opcode, protocol 2..=5) first, every opcode
/// known with arguments that fit in the input, STOP last with no trailing bytes.
///
/// Runs in time linear in `data.len()` and allocates nothing.
pub fn validate(data: &[u8]) -> Result<(), PickleError> {
    if data.first() != Some(&PROTO) {
        return Err(PickleError::NoProtocolHeader);
    }
    if let Some(&version @ 0..=1) = data.get(1) {
        return Err(PickleError::UnsupportedProtocol(version));
    }
    let mut pos = 0;
    let mut open_marks = 0usize;
    while let Some(&byte) = data.get(pos) {
        let offset = pos;
        let op = TABLE[usize::from(byte)].ok_or(PickleError::UnknownOpcode {
            opcode: byte,
            offset,
        })?;
        if byte == STOP {
            return match data.len() - offset - 1 {
                0 => Ok(()),
                rest => Err(PickleError::TrailingBytes(rest)),
            };
        }
        let rest = &data[offset + 1..];
        let len = arg_len(op.arg, rest).map_err(|fault| match fault {
            Fault::Truncated => PickleError::Truncated {
                opcode: op.name,
                offset,
            },
            Fault::Negative => PickleError::NegativeLength {
                opcode: op.name,
                offset,
            },
        })?;
        pos = offset + 1 + len;
        if byte == PROTO && rest[0] > 5 {
            return Err(PickleError::UnsupportedProtocol(rest[0]));
        }
        match op.marks {
            Marks::Keep => {}
            Marks::Push => open_marks += 1,
            // POP may also discard a MARK; not tracking that only makes this check more lenient.
            Marks::Pop => {
                open_marks = open_marks.checked_sub(1).ok_or(PickleError::MissingMark {
                    opcode: op.name,
                    offset,
                })?;
            }
        }
    }
    Err(PickleError::NoStop)
}

/// Length of the argument at the start of `rest`, checked to lie within `rest`.
fn arg_len(arg: Arg, rest: &[u8]) -> Result<usize, Fault> {
    let len = match arg {
        Arg::None => 0,
        Arg::Fixed(n) => n,
        Arg::Line => line_end(rest, 0)?,
        Arg::TwoLines => line_end(rest, line_end(rest, 0)?)?,
        Arg::Counted(width) => width + counted(rest, width, false)?,
        Arg::SignedCounted(width) => width + counted(rest, width, true)?,
        Arg::Frame => {
            // CPython also rejects a FRAME longer than the rest of the input.
            counted(rest, 8, false)?;
            8
        }
    };
    if len > rest.len() {
        Err(Fault::Truncated)
    } else {
        Ok(len)
    }
}

/// The little-endian length prefix of `width` bytes at the start of `rest`, checked to fit in
/// the bytes after the prefix.
fn counted(rest: &[u8], width: usize, signed: bool) -> Result<usize, Fault> {
    let prefix = rest.get(..width).ok_or(Fault::Truncated)?;
    if signed && prefix[width - 1] & 0x80 != 0 {
        return Err(Fault::Negative);
    }
    let count = prefix
        .iter()
        .rev()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    // Compared in u64 so lengths near u64::MAX cannot overflow.
    let available = rest.len() - width;
    if count > available as u64 {
        return Err(Fault::Truncated);
    }
    Ok(count as usize)
}

/// Index just past the newline that ends the line starting at `rest[from]`.
fn line_end(rest: &[u8], from: usize) -> Result<usize, Fault> {
    rest[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i + 1)
        .ok_or(Fault::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dill.dumps(lambda x: x * 2)` (dill 0.4.1, Python 3.11).
    const DILL_LAMBDA: &[u8] = b"\x80\x04\x95\xcc\x00\x00\x00\x00\x00\x00\x00\x8c\x0adill._dill\x94\x8c\x10_create_function\x94\x93\x94(h\x00\x8c\x0c_create_code\x94\x93\x94(C\x00\x94K\x01K\x00K\x00K\x01K\x02K\x03C\x0c\x97\x00|\x00d\x01z\x05\x00\x00S\x00\x94NK\x02\x86\x94)\x8c\x01x\x94\x85\x94\x8c\x09client.py\x94\x8c\x08<lambda>\x94h\x0bK\x02C\x0a\x80\x00\x901\x90q\x915\x80\x00\x94h\x05))t\x94R\x94c__builtin__\x0a__main__\x0ah\x0bNNt\x94R\x94}\x94}\x94\x8c\x0f__annotations__\x94}\x94s\x86\x94b.";
    /// `dill.dumps(((1, "a"), {"k": [1.5, None]}))`.
    const DILL_NESTED: &[u8] = b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00K\x01\x8c\x01a\x94\x86\x94}\x94\x8c\x01k\x94]\x94(G?\xf8\x00\x00\x00\x00\x00\x00Nes\x86\x94.";
    /// `dill.dumps(make_adder())`: a function defined in `__main__` closing over `y = 3`.
    const DILL_CLOSURE: &[u8] = b"\x80\x04\x95q\x01\x00\x00\x00\x00\x00\x00\x8c\x0adill._dill\x94\x8c\x10_create_function\x94\x93\x94(h\x00\x8c\x0c_create_code\x94\x93\x94(C\x02\x04\x01\x94K\x01K\x00K\x00K\x01K\x02K\x13C\x0e\x95\x01\x97\x00|\x00\x89\x01z\x00\x00\x00S\x00\x94N\x85\x94)\x8c\x01x\x94\x85\x94\x8c\x09client.py\x94\x8c\x03add\x94\x8c\x17make_adder.<locals>.add\x94K\x05C\x0c\xf8\x80\x00\xd8\x0f\x10\x901\x89u\x88\x0c\x94C\x00\x94\x8c\x01y\x94\x85\x94)t\x94R\x94c__builtin__\x0a__main__\x0ah\x0bNh\x00\x8c\x0c_create_cell\x94\x93\x94N\x85\x94R\x94\x85\x94t\x94R\x94}\x94}\x94(\x8c\x0f__annotations__\x94}\x94\x8c\x0c__qualname__\x94h\x0cu\x86\x94b\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94\x8c\x04dill\x94\x8c\x05_dill\x94\x93\x94\x8c\x08_setattr\x94h \x8c\x07setattr\x94\x93\x94\x87\x94R\x94h\x16\x8c\x0dcell_contents\x94K\x03\x87\x94R0.";
    /// `pickle.dumps(OBJ, protocol=P)` for P in 2..=5, with
    /// `OBJ = {"a": [1, 2.5, None, True], "b": (b"xy", "é", 2**70, -5), "s": {1, 2}, "f": frozenset([3])}`.
    const PICKLE_P2: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03(c_codecs\x0aencode\x0aq\x04X\x02\x00\x00\x00xyq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08X\x02\x00\x00\x00\xc3\xa9q\x09\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@J\xfb\xff\xff\xfftq\x0aX\x01\x00\x00\x00sq\x0bc__builtin__\x0aset\x0aq\x0c]q\x0d(K\x01K\x02e\x85q\x0eRq\x0fX\x01\x00\x00\x00fq\x10c__builtin__\x0afrozenset\x0aq\x11]q\x12K\x03a\x85q\x13Rq\x14u.";
    const PICKLE_P3: &[u8] = b"\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bq\x03(C\x02xyq\x04X\x02\x00\x00\x00\xc3\xa9q\x05\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@J\xfb\xff\xff\xfftq\x06X\x01\x00\x00\x00sq\x07cbuiltins\x0aset\x0aq\x08]q\x09(K\x01K\x02e\x85q\x0aRq\x0bX\x01\x00\x00\x00fq\x0ccbuiltins\x0afrozenset\x0aq\x0d]q\x0eK\x03a\x85q\x0fRq\x10u.";
    const PICKLE_P4: &[u8] = b"\x80\x04\x95P\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88e\x8c\x01b\x94(C\x02xy\x94\x8c\x02\xc3\xa9\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@J\xfb\xff\xff\xfft\x94\x8c\x01s\x94\x8f\x94(K\x01K\x02\x90\x8c\x01f\x94(K\x03\x91\x94u.";
    const PICKLE_P5: &[u8] = b"\x80\x05\x95P\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88e\x8c\x01b\x94(C\x02xy\x94\x8c\x02\xc3\xa9\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@J\xfb\xff\xff\xfft\x94\x8c\x01s\x94\x8f\x94(K\x01K\x02\x90\x8c\x01f\x94(K\x03\x91\x94u.";

    const VALID: &[&[u8]] = &[
        DILL_LAMBDA,
        DILL_NESTED,
        DILL_CLOSURE,
        PICKLE_P2,
        PICKLE_P3,
        PICKLE_P4,
        PICKLE_P5,
    ];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn accepts_real_dill_and_pickle_output() {
        for (i, fixture) in VALID.iter().enumerate() {
            assert_eq!(validate(fixture), Ok(()), "fixture {i}");
        }
    }

    #[test]
    fn accepts_every_opcode_with_arguments() {
        let stream = cat(&[
            b"\x80\x02(0(1N2F1.5\nI7\nJ\x01\x00\x00\x00K\x01L5L\nM\x01\x00",
            b"P0\nQS'a'\nT\x01\x00\x00\x00aU\x01aV\xe9\nX\x01\x00\x00\x00a",
            b"]Na(Ne}(NNd(Ngx\nh\x00(icm\nf\nj\x00\x00\x00\x00(lo",
            b"p0\nq\x00r\x00\x00\x00\x00s(t)(uG\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x80\x05\x81\x82\x01\x83\x01\x00\x84\x01\x00\x00\x00\x85\x86\x87\x88\x89",
            b"\x8a\x01\x01\x8b\x01\x00\x00\x00\x01B\x01\x00\x00\x00bC\x01b\x8c\x01u",
            b"\x8d\x01\x00\x00\x00\x00\x00\x00\x00u\x8e\x01\x00\x00\x00\x00\x00\x00\x00b",
            b"\x8f(\x90(\x91\x92\x93\x94\x96\x01\x00\x00\x00\x00\x00\x00\x00x\x97\x98",
            b"\x95\x02\x00\x00\x00\x00\x00\x00\x00N.",
        ]);
        assert_eq!(validate(&stream), Ok(()));
    }

    #[test]
    fn rejects_text_and_empty_input() {
        for input in [
            &b"payload"[..],
            b"",
            br#"{"fn": "lambda x: x", "args": [1]}"#,
            b"\n",
        ] {
            assert_eq!(validate(input), Err(PickleError::NoProtocolHeader));
        }
    }

    #[test]
    fn rejects_random_bytes() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            assert!(validate(&bytes).is_err(), "{bytes:?}");
            // Behind a valid header random bytes must still fail cleanly, never panic.
            assert!(validate(&cat(&[b"\x80\x04", &bytes])).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn rejects_every_truncation_prefix() {
        for fixture in VALID {
            for end in 0..fixture.len() {
                assert!(
                    validate(&fixture[..end]).is_err(),
                    "prefix of {end} bytes accepted"
                );
            }
        }
        assert_eq!(
            validate(&PICKLE_P3[..9]),
            Err(PickleError::Truncated {
                opcode: "BINUNICODE",
                offset: 6
            })
        );
        // Framed streams are cut inside their first FRAME, which covers the rest of the stream.
        assert_eq!(
            validate(&DILL_NESTED[..15]),
            Err(PickleError::Truncated {
                opcode: "FRAME",
                offset: 2
            })
        );
        assert_eq!(
            validate(&DILL_NESTED[..1]),
            Err(PickleError::Truncated {
                opcode: "PROTO",
                offset: 0
            })
        );
        assert_eq!(
            validate(&PICKLE_P2[..PICKLE_P2.len() - 1]),
            Err(PickleError::NoStop)
        );
        assert_eq!(
            validate(b"\x80\x03cbuiltins\nset"),
            Err(PickleError::Truncated {
                opcode: "GLOBAL",
                offset: 2
            })
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        assert_eq!(
            validate(&cat(&[DILL_LAMBDA, b"x"])),
            Err(PickleError::TrailingBytes(1))
        );
        assert_eq!(
            validate(&cat(&[PICKLE_P4, b"\n\n"])),
            Err(PickleError::TrailingBytes(2))
        );
    }

    #[test]
    fn checks_the_protocol() {
        assert_eq!(
            validate(b"\x80\x06N."),
            Err(PickleError::UnsupportedProtocol(6))
        );
        assert_eq!(
            validate(b"\x80\xffN."),
            Err(PickleError::UnsupportedProtocol(255))
        );
        assert_eq!(
            validate(b"\x80\x01N."),
            Err(PickleError::UnsupportedProtocol(1))
        );
        assert_eq!(
            validate(b"\x80\x04\x80\x06N."),
            Err(PickleError::UnsupportedProtocol(6))
        );
        // Protocol 1 streams have no header at all.
        assert_eq!(validate(b"}q\x00."), Err(PickleError::NoProtocolHeader));
    }

    #[test]
    fn huge_lengths_are_truncation_not_panics() {
        let max = u64::MAX.to_le_bytes();
        for opcode in [0x8d, 0x8e, 0x96, 0x95] {
            let stream = cat(&[b"\x80\x04", &[opcode], &max, b"N."]);
            let err = validate(&stream).unwrap_err();
            assert!(
                matches!(err, PickleError::Truncated { offset: 2, .. }),
                "{err:?}"
            );
        }
        for opcode in [b'X', b'B'] {
            let stream = cat(&[b"\x80\x04", &[opcode], b"\xff\xff\xff\xffN."]);
            assert!(matches!(
                validate(&stream),
                Err(PickleError::Truncated { offset: 2, .. })
            ));
        }
    }

    #[test]
    fn rejects_negative_lengths() {
        assert_eq!(
            validate(b"\x80\x02T\xff\xff\xff\xffN."),
            Err(PickleError::NegativeLength {
                opcode: "BINSTRING",
                offset: 2
            })
        );
        assert_eq!(
            validate(b"\x80\x02\x8b\x00\x00\x00\x80N."),
            Err(PickleError::NegativeLength {
                opcode: "LONG4",
                offset: 2
            })
        );
    }

    #[test]
    fn tracks_marks() {
        assert_eq!(validate(b"\x80\x02(t."), Ok(()));
        assert_eq!(
            validate(b"\x80\x02N\x85t."),
            Err(PickleError::MissingMark {
                opcode: "TUPLE",
                offset: 4
            })
        );
        assert_eq!(
            validate(b"\x80\x02(t]e."),
            Err(PickleError::MissingMark {
                opcode: "APPENDS",
                offset: 5
            })
        );
    }

    #[test]
    fn messages_are_user_facing() {
        let cases = [
            (
                validate(b"payload"),
                "not a pickle stream: it does not start with a protocol header (PROTO opcode)",
            ),
            (
                validate(b"\x80\x04\xffN."),
                "unknown pickle opcode 0xff at byte 2",
            ),
            (
                validate(b"\x80\x04\x0aN."),
                "unknown pickle opcode 0x0a at byte 2",
            ),
            (
                validate(b"\x80\x04X\x05\x00\x00\x00ab"),
                "pickle stream truncated inside BINUNICODE at byte 2",
            ),
            (validate(b"\x80\x04N"), "pickle stream has no STOP opcode"),
            (
                validate(b"\x80\x04N.abc"),
                "3 trailing bytes after the STOP opcode",
            ),
            (validate(b"\x80\x06N."), "unsupported pickle protocol 6"),
            (
                validate(b"\x80\x02T\xff\xff\xff\xff"),
                "negative length in BINSTRING at byte 2",
            ),
            (
                validate(b"\x80\x02d."),
                "DICT at byte 2 has no matching MARK",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }
}
