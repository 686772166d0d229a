//! Inference throughput of the spam and sentiment classifiers on short chat messages,
//! single-threaded, so messages/s here is messages/s per core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgebot::ml::Models;

/// Short messages of the kind a group chat sees, in several scripts.
const MESSAGES: [&str; 16] = [
    "ok see you at 7",
    "Привет всем! Кто-нибудь знает, когда следующая встреча?",
    "WINNER!! Claim your £1000 prize now, call 09061701461",
    "lol that's hilarious 😂",
    "Заработок от 3000$ в неделю, пишите в лс @investbot",
    "thanks, that fixed it",
    "Does anyone have the link to yesterday's slides?",
    "Join https://t.me/+abcdef for free crypto signals",
    "я не согласен, это плохая идея",
    "Great job everyone, really proud of this release!",
    "the build is broken again",
    "¿Alguien sabe si hay reunión mañana?",
    "sure",
    "I hate when this happens, so annoying",
    "Ищу людей на удалённую работу, 2 часа в день",
    "can you send me the file",
];

fn bench(c: &mut Criterion) {
    let models = Models::load(None).expect("embedded models");
    let mut group = c.benchmark_group("ml");
    group.throughput(Throughput::Elements(MESSAGES.len() as u64));
    group.bench_function("analyze", |b| {
        b.iter(|| {
            for m in MESSAGES {
                black_box(models.analyze(black_box(m)));
            }
        })
    });
    group.bench_function("analyze_batch", |b| {
        b.iter(|| black_box(models.analyze_batch(black_box(&MESSAGES))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
