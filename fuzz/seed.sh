#!/usr/bin/env bash
# Builds the seed corpus under fuzz/corpus/<target>/ from the shared update samples
# (../shared/data/updates, or $EDGEBOT_SHARED_DATA/updates) and the project's own
# example config. The corpus is not committed (it copies the shared data); run this
# script instead. Re-running it only adds files.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
shared="${EDGEBOT_SHARED_DATA:-$root/../shared/data}"
updates="$shared/updates"
corpus="$here/corpus"

# Must match fuzz_targets/webhook_http.rs.
path="/hook"
secret="s3cret"

for target in update_parse command_parse callback_data config_parse template webhook_http admin_http service_response sse_decode markup; do
    mkdir -p "$corpus/$target"
done

# Writes stdin to corpus/$1 under a content-derived name, so re-runs don't duplicate.
put() {
    local dir="$corpus/$1" tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    mv "$tmp" "$dir/$(sha1sum <"$tmp" | cut -c1-40)"
}

# One webhook request carrying the body on stdin, with extra header lines in "$@".
request() {
    local body
    body="$(cat)"
    {
        printf 'POST %s HTTP/1.1\r\nhost: bot.example.com\r\ncontent-type: application/json\r\n' "$path"
        printf 'content-length: %d\r\n' "$(printf '%s' "$body" | wc -c)"
        for header in "$@"; do printf '%s\r\n' "$header"; done
        printf '\r\n%s' "$body"
    }
}

samples=()
if [ -d "$updates" ]; then
    shopt -s nullglob
    samples=("$updates"/*.json "$updates"/negative/*.json)
else
    echo "seed.sh: $updates not found; seeding from the example config only" >&2
fi

for sample in "${samples[@]}"; do
    put update_parse <"$sample"
    request "x-telegram-bot-api-secret-token: $secret" <"$sample" | put webhook_http
    if command -v jq >/dev/null; then
        # Texts and callback data as the router and the command parser meet them.
        jq -r '.. | objects | (.text?, .caption?) | strings' "$sample" 2>/dev/null |
            while IFS= read -r text; do printf '%s' "$text" | put command_parse; done
        jq -r '.. | objects | .callback_data?, (select(has("chat_instance")) | .data?) | strings' \
            "$sample" 2>/dev/null |
            while IFS= read -r data; do printf '%s' "$data" | put callback_data; done
    fi
done

# Requests the listener must refuse: wrong secret, wrong method, wrong path, a body
# over the limit, a chunked body, and a keep-alive pair.
body='{"update_id":1,"message":{"message_id":1,"date":0,"chat":{"id":1,"type":"private"},"text":"/start ref_42"}}'
printf '%s' "$body" | request "x-telegram-bot-api-secret-token: wrong" | put webhook_http
printf '%s' "$body" | request | put webhook_http
printf 'GET %s HTTP/1.1\r\nhost: x\r\n\r\n' "$path" | put webhook_http
printf 'POST /other HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}' | put webhook_http
printf 'POST %s HTTP/1.1\r\nhost: x\r\nx-telegram-bot-api-secret-token: %s\r\ncontent-length: 99999999\r\n\r\n{}' \
    "$path" "$secret" | put webhook_http
printf 'POST %s HTTP/1.1\r\nhost: x\r\nx-telegram-bot-api-secret-token: %s\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n' \
    "$path" "$secret" "${#body}" "$body" | put webhook_http
{
    printf '%s' "$body" | request "x-telegram-bot-api-secret-token: $secret"
    printf '%s' "${body/\"update_id\":1/\"update_id\":2}" | request "x-telegram-bot-api-secret-token: $secret"
} | put webhook_http
printf 'not json' | request "x-telegram-bot-api-secret-token: $secret" | put webhook_http

# Commands and deep links.
for text in "/start" "/start ref_42" "/help@edgebot_test_bot" "/help@other_bot x" \
    "/Start  promo-2026 " "/a😀" "hello /help" "/feedback great bot" "/"; do
    printf '%s' "$text" | put command_parse
done

# The example config, its routes' texts and the built-in callback data.
put config_parse <"$root/edgebot.example.toml"
sed -n 's/^#* *reply = "\(.*\)"$/\1/p' "$root/edgebot.example.toml" |
    while IFS= read -r reply; do printf '%s' "$reply" | put template; done
for template in "Hi {first_name}! {{not}} {message_count}}}" "{user_id}{referrals}{language}" \
    "{last_name} @{username}" "a } b" "{first_name"; do
    printf '%s' "$template" | put template
done
for data in "about:yes" "about:no" "about:thanks" "about:" "" "abo"; do
    printf '%s' "$data" | put callback_data
done

# The admin listener (must match fuzz_targets/admin_http.rs: the account `fuzz` with
# the password `fuzz password 1`, the static token `fuzz-token`, users 1 to 3): the API
# with and without its token, sign-in, a panel form with a cookie, two requests in one.
printf 'GET /health HTTP/1.1\r\nhost: x\r\n\r\n' | put admin_http
printf 'GET /api/v1/users?q=a&status=active&limit=5 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer fuzz-token\r\n\r\n' |
    put admin_http
admin_body='{"status":"banned"}'
printf 'PATCH /api/v1/users/2 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer fuzz-token\r\ncontent-length: %d\r\n\r\n%s' \
    "${#admin_body}" "$admin_body" | put admin_http
admin_body='{"username":"fuzz","password":"fuzz password 1"}'
printf 'POST /api/v1/auth/token HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s' \
    "${#admin_body}" "$admin_body" | put admin_http
admin_body='username=fuzz&password=fuzz+password+1'
printf 'POST /login HTTP/1.1\r\nhost: x\r\norigin: http://x\r\ncontent-length: %d\r\n\r\n%s' \
    "${#admin_body}" "$admin_body" | put admin_http
printf 'POST /users/1/ban HTTP/1.1\r\nhost: x\r\ncookie: a=b; edgebot_session=AAAA\r\ncontent-length: 9\r\n\r\ncsrf=abcd' |
    put admin_http
printf 'GET /events?type=command&since=2026-01-01 HTTP/1.1\r\nhost: x\r\n\r\nGET /api/v1/audit?before=9 HTTP/1.1\r\nhost: x\r\nauthorization: bearer fuzz-token\r\n\r\n' |
    put admin_http

# Service responses: the contract's examples, and ones it refuses.
for response in '{}' '{"actions":[{"type":"send","text":"Hello","format":"html","keyboard":[[{"text":"Go","callback_data":"go"}]],"reply":true}]}' \
    '{"actions":[{"type":"edit","text":"x"},{"type":"answer_callback","text":"ok","alert":true},{"type":"delete"}]}' \
    '{"session":{"internal_user_id":"u-17","state":"menu","data":{"n":1},"ttl_secs":86400}}' \
    '{"session":{"end":true},"events":[{"name":"matched","data":{"with":17}}]}' \
    '{"actions":[{"type":"shout"}]}' '{"actions":[{"type":"send","text":""}]}' '[1,2]' 'null'; do
    printf '%s' "$response" | put service_response
done

# Server-sent event streams as LLM providers send them. Each input starts as
# fuzz_targets/sse_decode.rs reads it: a two-byte event-size limit (ff ff: 65535 bytes),
# the number of cuts (3) and three two-byte offsets; the rest is the stream.
sse() { { printf '\xff\xff\x03\x07\x00\x2a\x00\x99\x00'; cat; } | put sse_decode; }
chunk='data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n'
{
    printf "$chunk" '{"role":"assistant","content":""}' null
    printf "$chunk" '{"content":"Привет"}' null
    printf "$chunk" '{"content":", 😀 wo"}' null
    printf "$chunk" '{}' '"stop"'
    printf 'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":14,"completion_tokens":6,"total_tokens":20}}\n\n'
    printf 'data: [DONE]\n\n'
} | sse
{
    printf 'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":14,"output_tokens":1}}}\n\n'
    printf 'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    printf 'event: ping\ndata: {"type": "ping"}\n\n'
    printf 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour, ça va ? 😀"}}\n\n'
    printf 'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    printf 'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}\n\n'
    printf 'event: message_stop\ndata: {"type":"message_stop"}\n\n'
} | sse
printf 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n' | sse
# A BOM, comments, CRLF and CR line ends, multi-line data, ids, retry, a cut-off event.
printf '\xef\xbb\xbf: keep-alive\r\nretry: 3000\r\nid: 1\r\ndata: a\r\ndata:b\r\r\ndata\r\n\nevent: x\n\nid: 2\0\ndata: \xff\xe2\x82\n\ndata: cut' | sse

# Model answers in Markdown, as fuzz_targets/markup.rs reads them: one byte of small
# limit (\x10: 16 units), then the answer. Well-formed ones, and the ways models get
# them wrong (unclosed markers and fences, HTML in the text, odd links).
md() { { printf '\x10'; cat; } | put markup; }
printf '# Title\n\nSome **bold**, *italic*, ~~gone~~ and `a < b`.\n\n> quoted _line_\n\n- item one\n- item two\n' | md
printf 'Run this:\n```python\nif x:\n    print("a < b & c")\n```\nThen [read the docs](https://example.com/a_b?x=1&y="2").' | md
printf '**never closed, and `a stray backtick, <div>html</div> & co.\n```js\nunclosed fence' | md
printf 'snake_case and 2*3*4, https://e.com/_x_/*y*, <https://e.com>, [x](javascript:alert(1)), [](tg://user?id=1)' | md
printf 'Привет! 😀 Это длинный ответ. 一句。二句。 Sentence one. Sentence two? Yes!\n\nNext paragraph.' | md
printf '***both*** **a *b** *a **b* __init__ _a *b_ c* \\*escaped\\* &amp; &#128512;' | md

for target in "$corpus"/*; do
    echo "$(basename "$target"): $(find "$target" -type f | wc -l) seeds"
done
