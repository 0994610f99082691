//! Benchmarks `hash_entries` on a generated 3,000-file / 100 MB context:
//! cold (empty stat cache, every file read) and warm (all cache hits).

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use imgbuild::context::{PatternMatcher, StatCache, hash_entries, walk};

const FILES: usize = 3_000;
const TOTAL_BYTES: usize = 100 * 1024 * 1024;

/// Writes `FILES` files totalling `TOTAL_BYTES` in 30 directories, sizes
/// skewed so a few files are large (like real contexts), mtimes backdated so
/// cached hashes are trusted.
fn generate(root: &Path) -> u64 {
    // Weights 1..=FILES in a repeating pattern: most files small, some big.
    let weights: Vec<usize> = (0..FILES)
        .map(|i| if i % 100 == 0 { 400 } else { 1 + i % 13 })
        .collect();
    let total_weight: usize = weights.iter().sum();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut written = 0u64;
    let old = SystemTime::now() - Duration::from_secs(3600);
    for (i, w) in weights.iter().enumerate() {
        let size = TOTAL_BYTES * w / total_weight;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                // xorshift: incompressible-ish content
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let p = root.join(format!("dir{:02}/file{i:05}.bin", i % 30));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &data).unwrap();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        written += data.len() as u64;
    }
    written
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bytes = generate(root);
    let entries = walk(root, &PatternMatcher::default()).unwrap();
    // ctime is "now" and cannot be backdated: wait out the racy window so
    // warm runs hit the cache.
    std::thread::sleep(Duration::from_secs(3));

    let mut group = c.benchmark_group("context_hash");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.bench_function("cold", |b| {
        b.iter_batched(
            StatCache::new,
            |mut cache| {
                let report = hash_entries(root, &entries, &mut cache).unwrap();
                assert_eq!(report.files_read, FILES);
                report
            },
            BatchSize::PerIteration,
        );
    });
    let mut cache = StatCache::new();
    hash_entries(root, &entries, &mut cache).unwrap();
    group.bench_function("warm", |b| {
        b.iter(|| {
            let report = hash_entries(root, &entries, &mut cache).unwrap();
            assert_eq!(report.files_read, 0);
            report
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
