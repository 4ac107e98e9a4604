//! Payload checking on the gateway's submission path: base64 decoding plus the pickle opcode
//! walk, for a small dill payload and for large argument payloads.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use faas::payload::{decode_payload, encode_payload};
use std::hint::black_box;

/// A protocol-4 pickle of `((b"x" * n,), {})`, as dill writes it for bytes arguments.
fn args_pickle(n: usize) -> Vec<u8> {
    let mut p = vec![0x80, 4, 0x95];
    p.extend_from_slice(&((n + 17) as u64).to_le_bytes());
    p.push(0x8e); // BINBYTES8
    p.extend_from_slice(&(n as u64).to_le_bytes());
    p.extend(std::iter::repeat_n(b'x', n));
    p.extend_from_slice(&[0x94, 0x85, 0x94, 0x7d, 0x94, 0x86, 0x94, b'.']);
    p
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_payload");
    for size in [16usize, 1 << 20, 10 << 20] {
        let pickle = args_pickle(size);
        faas::pickle::validate(&pickle).expect("a valid pickle");
        let text = encode_payload(&pickle);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &text, |b, text| {
            b.iter(|| decode_payload(black_box(text)).expect("valid"));
        });
    }
    group.finish();
    let pickle = args_pickle(16);
    c.bench_function("validate_pickle_small", |b| {
        b.iter(|| faas::pickle::validate(black_box(&pickle)).expect("valid"));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
