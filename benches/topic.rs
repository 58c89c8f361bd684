//! Topic matcher benchmarks: `TopicTrie::for_each_match` with 10, 1,000 and 100,000 bindings.
//!
//! Bindings look like a typical event-routing setup (`region.service.event`, three words) and
//! mix literal patterns with `*` and `#` ones:
//! - 70% literal: `r{r}.s{s}.e{i}`
//! - 20% with `*`: `r{r}.*.e{i}`
//! - 10% with `#`: half `r{r}.s{s}.#`, half `#.e{i}`
//!
//! Routing keys are drawn (with a fixed seed) from the same word space, so some match several
//! bindings and many match none; one benchmark routes a key that only a `#` can reach.
//! Throughput is per routed key. `topic_matches` (the naive reference matcher, one pattern at a
//! time) is timed against the 1,000-binding set to show what the trie saves.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use warren::exchange::topic::{TopicTrie, topic_matches};

/// Keys routed per iteration.
const KEYS: usize = 1000;

/// A small deterministic generator (xorshift), so runs are comparable without a rand dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Regions and services scale with the binding count so the trie stays realistically wide.
fn dims(n: usize) -> (u64, u64) {
    let regions = ((n as f64).sqrt() as u64 / 4).max(2);
    (regions, 8)
}

fn patterns(n: usize) -> Vec<String> {
    let (regions, services) = dims(n);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let r = rng.below(regions);
            let s = rng.below(services);
            match i % 20 {
                0..=13 => format!("r{r}.s{s}.e{i}"),
                14..=17 => format!("r{r}.*.e{i}"),
                18 => format!("r{r}.s{s}.#"),
                _ => format!("#.e{i}"),
            }
        })
        .collect()
}

fn keys(n: usize) -> Vec<String> {
    let (regions, services) = dims(n);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    (0..KEYS)
        .map(|_| {
            format!(
                "r{}.s{}.e{}",
                rng.below(regions),
                rng.below(services),
                rng.below(n as u64)
            )
        })
        .collect()
}

fn trie(patterns: &[String]) -> TopicTrie<u32> {
    let mut t = TopicTrie::new();
    for (i, p) in patterns.iter().enumerate() {
        t.insert(p, i as u32);
    }
    t
}

fn route(t: &TopicTrie<u32>, keys: &[String]) -> usize {
    let mut hits = 0;
    for k in keys {
        t.for_each_match(k, |v| {
            black_box(v);
            hits += 1;
        });
    }
    hits
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("topic");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(KEYS as u64));
    for n in [10usize, 1_000, 100_000] {
        let pats = patterns(n);
        let t = trie(&pats);
        let ks = keys(n);
        let hits = route(&t, &ks);
        eprintln!("topic: {n} bindings, {KEYS} keys -> {hits} matches");
        g.bench_with_input(BenchmarkId::new("route", n), &ks, |b, ks| {
            b.iter(|| route(&t, ks))
        });
        // A key with an unknown region: only the `#.e{i}` patterns can match it.
        let miss: Vec<String> = (0..KEYS).map(|i| format!("zz.s0.e{i}x")).collect();
        g.bench_with_input(BenchmarkId::new("route_miss", n), &miss, |b, ks| {
            b.iter(|| route(&t, ks))
        });
        // Deep keys (8 words) exercise the `#` states across many words.
        let deep: Vec<String> = ks.iter().map(|k| format!("{k}.x.y.z.w.e1")).collect();
        g.bench_with_input(BenchmarkId::new("route_deep_8_words", n), &deep, |b, ks| {
            b.iter(|| route(&t, ks))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("topic_naive");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(10);
    let n = 1_000;
    let pats = patterns(n);
    // 100 keys: each costs a full scan of the 1,000 patterns.
    let ks: Vec<String> = keys(n).into_iter().take(100).collect();
    g.throughput(Throughput::Elements(ks.len() as u64));
    g.bench_with_input(BenchmarkId::new("scan_all_patterns", n), &ks, |b, ks| {
        b.iter(|| {
            let mut hits = 0;
            for k in ks {
                for p in &pats {
                    hits += usize::from(topic_matches(p, k));
                }
            }
            hits
        })
    });
    g.finish();

    let mut g = c.benchmark_group("topic_build");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(10);
    let pats = patterns(100_000);
    g.throughput(Throughput::Elements(pats.len() as u64));
    g.bench_function("insert_100k", |b| b.iter(|| trie(&pats).len()));
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
