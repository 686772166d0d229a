#!/usr/bin/env python3
"""Checks `edgebot fake-llm` against the official Python SDKs, openai and anthropic,
which parse every answer and every streamed event into their own types and raise their
own errors for error answers. Not part of `cargo test`; run it by hand after changing
the fake (the key must be `k`; --split-chunks makes the SDKs' SSE readers put split
characters and lines back together):

    pip download openai anthropic -d /tmp/llm-wheels
    python3 -m venv /tmp/llm-venv
    /tmp/llm-venv/bin/pip install --no-index --find-links /tmp/llm-wheels openai anthropic
    cargo run -- fake-llm --listen 127.0.0.1:8082 --api-key k --split-chunks &
    /tmp/llm-venv/bin/python tests/clients/llm_check.py [http://127.0.0.1:8082]

It prints the SDKs' versions, one line per check, and exits non-zero if any failed.
"""

import json
import math
import sys
import urllib.request

import anthropic
import openai

ROOT = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8082").rstrip("/")
KEY = "k"
SYSTEM = "You are a kind, brief assistant."
QUESTION = "Привет! How are you, 😀?"


def control(method, path, body=None):
    """A call to the fake's control API; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{ROOT}/_fake/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def tokens(text):
    """The fake's documented count: one token per 4 bytes of UTF-8, rounded up."""
    return math.ceil(len(text.encode()) / 4)


def prompt_tokens(*texts):
    """3 per prompt, plus 3 and its text's tokens per message."""
    return 3 + sum(3 + tokens(text) for text in texts)


ECHO = f"You said: {QUESTION}"
failures = 0


def step(name, check):
    """Runs one check: it returns None when fine, or what is wrong."""
    global failures
    try:
        problem = check()
    except Exception as error:  # noqa: BLE001 - any exception is a failed check
        problem = f"{type(error).__name__}: {error}"
    if problem:
        failures += 1
        print(f"FAIL {name}: {problem}")
    else:
        print(f"ok   {name}")


def expect(what, got, wanted):
    return None if got == wanted else f"{what}: got {got!r}, wanted {wanted!r}"


def first_problem(*problems):
    return next((p for p in problems if p), None)


def raises(error_type, call):
    """None when `call` raises `error_type`, else what happened."""
    try:
        result = call()
    except error_type:
        return None
    except Exception as error:  # noqa: BLE001
        return f"raised {type(error).__name__}: {error}, not {error_type.__name__}"
    return f"returned {result!r}, did not raise {error_type.__name__}"


def main():
    print(f"openai {openai.__version__}, anthropic {anthropic.__version__}, fake at {ROOT}")
    control("POST", "reset", {})
    oa = openai.OpenAI(base_url=f"{ROOT}/v1", api_key=KEY, max_retries=0, timeout=10)
    an = anthropic.Anthropic(base_url=ROOT, api_key=KEY, max_retries=0, timeout=10)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    usage = (prompt_tokens(SYSTEM, QUESTION), tokens(ECHO))

    def openai_create():
        completion = oa.chat.completions.create(model="fake-model", messages=messages)
        choice = completion.choices[0]
        return first_problem(
            expect("content", choice.message.content, ECHO),
            expect("finish_reason", choice.finish_reason, "stop"),
            expect("object", completion.object, "chat.completion"),
            expect(
                "usage",
                (completion.usage.prompt_tokens, completion.usage.completion_tokens,
                 completion.usage.total_tokens),
                (*usage, sum(usage)),
            ),
        )

    def openai_stream():
        stream = oa.chat.completions.create(
            model="fake-model",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, final_usage, chunks = "", None, None, 0
        for chunk in stream:
            chunks += 1
            if chunk.usage is not None:
                final_usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return first_problem(
            expect("streamed text", text, ECHO),
            expect("finish_reason", finish, "stop"),
            expect("usage chunk", final_usage, usage),
            None if chunks > 4 else f"only {chunks} chunks",
        )

    def openai_scripted_and_cut():
        control("POST", "answers", {"answers": ["A scripted answer, longer than twelve bytes"]})
        completion = oa.chat.completions.create(
            model="fake-model", messages=messages, max_tokens=3
        )
        choice = completion.choices[0]
        return first_problem(
            expect("content", choice.message.content, "A scripted a"),
            expect("finish_reason", choice.finish_reason, "length"),
            expect("completion_tokens", completion.usage.completion_tokens, 3),
        )

    def anthropic_create():
        message = an.messages.create(
            model="fake-model",
            max_tokens=256,
            system=SYSTEM,
            messages=[{"role": "user", "content": QUESTION}],
        )
        return first_problem(
            expect("content", [(b.type, b.text) for b in message.content], [("text", ECHO)]),
            expect("stop_reason", message.stop_reason, "end_turn"),
            expect("usage", (message.usage.input_tokens, message.usage.output_tokens), usage),
        )

    def anthropic_stream():
        with an.messages.stream(
            model="fake-model",
            max_tokens=256,
            system=SYSTEM,
            messages=[{"role": "user", "content": QUESTION}],
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        return first_problem(
            expect("text_stream", "".join(pieces), ECHO),
            None if len(pieces) > 3 else f"only {len(pieces)} text pieces",
            expect("final text", final.content[0].text, ECHO),
            expect("stop_reason", final.stop_reason, "end_turn"),
            expect("usage", (final.usage.input_tokens, final.usage.output_tokens), usage),
        )

    def wrong_keys():
        wrong_oa = openai.OpenAI(base_url=f"{ROOT}/v1", api_key="wrong", max_retries=0)
        wrong_an = anthropic.Anthropic(base_url=ROOT, api_key="wrong", max_retries=0)
        return first_problem(
            raises(
                openai.AuthenticationError,
                lambda: wrong_oa.chat.completions.create(model="m", messages=messages),
            ),
            raises(
                anthropic.AuthenticationError,
                lambda: wrong_an.messages.create(
                    model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                ),
            ),
        )

    def rate_limits():
        control("POST", "faults", {"fault": "429", "retry_after": 1, "provider": "openai"})
        control("POST", "faults", {"fault": "429", "retry_after": 1, "provider": "anthropic"})
        return first_problem(
            raises(
                openai.RateLimitError,
                lambda: oa.chat.completions.create(model="m", messages=messages),
            ),
            raises(
                anthropic.RateLimitError,
                lambda: an.messages.create(
                    model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                ),
            ),
        )

    def overloaded():
        control("POST", "faults", {"fault": "5xx", "status": 529, "provider": "anthropic"})
        try:
            an.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        except anthropic.APIStatusError as error:
            body_type = error.body.get("error", {}).get("type") if isinstance(error.body, dict) else None
            return first_problem(
                expect("status", error.status_code, 529),
                expect("error type", body_type, "overloaded_error"),
            )
        return "no error raised"

    def stopped_midway():
        control("POST", "faults", {"fault": "stop_midway", "after_chunks": 3, "times": 2})

        def openai_text():
            stream = oa.chat.completions.create(model="m", messages=messages, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        def anthropic_text():
            with an.messages.stream(
                model="m", max_tokens=256, messages=[{"role": "user", "content": QUESTION}]
            ) as stream:
                return "".join(stream.text_stream)

        for sdk, read in [("openai", openai_text), ("anthropic", anthropic_text)]:
            try:
                text = read()
            except Exception as error:  # noqa: BLE001 - whatever the SDK raises for it
                kind = f"{type(error).__module__}.{type(error).__name__}"
                print(f"     ({sdk}: a stream broken off raises {kind})")
                continue
            return f"{sdk} read a stream broken off as complete: {text!r}"
        return None

    def recorded():
        requests = control("GET", "requests")["requests"]
        auths = sorted({r["auth"] for r in requests})
        streams = [r["stream"] for r in requests if r["provider"] == "openai" and r["stream"]]
        return first_problem(
            expect("auth values seen", auths, ["valid", "wrong"]),
            None if streams else "no streamed OpenAI request recorded",
        )

    step("openai chat.completions.create", openai_create)
    step("openai stream with include_usage", openai_stream)
    step("openai scripted answer cut by max_tokens", openai_scripted_and_cut)
    step("anthropic messages.create", anthropic_create)
    step("anthropic messages.stream (text_stream, get_final_message)", anthropic_stream)
    step("wrong key: AuthenticationError (both)", wrong_keys)
    step("injected 429: RateLimitError (both)", rate_limits)
    step("injected 529: overloaded_error (anthropic)", overloaded)
    step("stream broken off midway raises (both)", stopped_midway)
    step("requests recorded by the control API", recorded)
    print(f"{10 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
