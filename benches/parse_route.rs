//! Update parsing, command parsing, routing and template rendering: the pure-CPU part
//! of every update's path.

use criterion::{Criterion, criterion_group, criterion_main};
use edgebot::config::Config;
use edgebot::engine::router::{Incoming, Router};
use edgebot::telegram::command::parse;
use edgebot::telegram::types::{ChatKind, Update};
use edgebot::template::{Field, Template, Values};
use std::hint::black_box;

const TEXT_UPDATE: &[u8] = br#"{"update_id":123456789,"message":{"message_id":4711,"from":{"id":987654321,"is_bot":false,"first_name":"Ada","last_name":"Lovelace","username":"ada","language_code":"en"},"chat":{"id":987654321,"first_name":"Ada","last_name":"Lovelace","username":"ada","type":"private"},"date":1732000000,"text":"hello there, how are you doing today?"}}"#;
const COMMAND_UPDATE: &[u8] = br#"{"update_id":123456790,"message":{"message_id":4712,"from":{"id":987654321,"is_bot":false,"first_name":"Ada","username":"ada","language_code":"en"},"chat":{"id":-1001234567890,"title":"Group","type":"supergroup"},"date":1732000000,"text":"/start@edgebot ref_42","entities":[{"offset":0,"length":14,"type":"bot_command"}]}}"#;
const CALLBACK_UPDATE: &[u8] = br#"{"update_id":123456791,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"id":987654321,"is_bot":false,"first_name":"Ada"},"message":{"message_id":4713,"date":1732000000,"chat":{"id":987654321,"type":"private"},"text":"Pick one","reply_markup":{"inline_keyboard":[[{"text":"Yes","callback_data":"about:yes"}]]}},"chat_instance":"-1","data":"about:yes"}}"#;

struct Ada;
impl Values for Ada {
    fn value(&self, field: Field, out: &mut String) {
        match field {
            Field::FirstName => out.push_str("Ada"),
            Field::MessageCount => out.push_str("42"),
            _ => {}
        }
    }
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_update");
    group.bench_function("text", |b| {
        b.iter(|| Update::from_json(black_box(TEXT_UPDATE)).unwrap())
    });
    group.bench_function("command", |b| {
        b.iter(|| Update::from_json(black_box(COMMAND_UPDATE)).unwrap())
    });
    group.bench_function("callback", |b| {
        b.iter(|| Update::from_json(black_box(CALLBACK_UPDATE)).unwrap())
    });
    group.finish();
    c.bench_function("parse_command", |b| {
        b.iter(|| parse(black_box("/start@edgebot ref_42"), &[], Some("edgebot")))
    });
}

fn routing(c: &mut Criterion) {
    let config = Config::parse(edgebot::config::EXAMPLE, std::path::Path::new("example")).unwrap();
    let router = Router::from_config(&config).unwrap();
    let mut group = c.benchmark_group("route");
    group.bench_function("command", |b| {
        b.iter(|| {
            router
                .route(black_box(Incoming::Command("profile")))
                .is_some()
        })
    });
    group.bench_function("callback", |b| {
        b.iter(|| {
            router
                .route(black_box(Incoming::Callback("about:yes")))
                .is_some()
        })
    });
    group.bench_function("text", |b| {
        b.iter(|| {
            router
                .route(black_box(Incoming::Text {
                    text: "Hello",
                    chat: ChatKind::Private,
                }))
                .is_some()
        })
    });
    group.finish();
    let template =
        Template::parse("Hi {first_name}, this is message {message_count}. {{braces}}").unwrap();
    c.bench_function("render_template", |b| {
        b.iter(|| template.render(black_box(&Ada)))
    });
}

criterion_group!(benches, parsing, routing);
criterion_main!(benches);
