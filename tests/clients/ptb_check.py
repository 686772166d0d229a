#!/usr/bin/env python3
"""Checks `edgebot fake-api` against a widely used Python client, python-telegram-bot,
which parses every answer into its own classes and refuses missing required fields
(a PhotoSize without width, a ChatFullInfo without accepted_gift_types). Not part of
`cargo test`; run it by hand after changing the fake:

    python3 -m venv /tmp/ptb-venv && /tmp/ptb-venv/bin/pip install python-telegram-bot
    cargo run -- fake-api --listen 127.0.0.1:8081 &
    /tmp/ptb-venv/bin/python tests/clients/ptb_check.py [http://127.0.0.1:8081]

It prints one line per call and exits non-zero at the first call that fails.
"""

import asyncio
import json
import sys
import urllib.request

from telegram import Bot, LabeledPrice
from telegram.error import TelegramError

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8081"
CHAT = 42
# A 1x1 PNG, uploaded as bytes (multipart/form-data).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201"
    "e5273de30000000049454e44ae426082"
)


def control(method, path, body=None):
    """A call to the fake's control API; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{BASE}/_fake/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


async def main():
    failures = 0

    async def step(name, call, check=lambda result: None):
        nonlocal failures
        try:
            result = await call
            problem = check(result)
        except (TelegramError, TypeError, KeyError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem:
            failures += 1
            print(f"FAIL {name}: {problem}")
        else:
            print(f"ok   {name}")

    control("DELETE", "calls")
    async with Bot("123456:PTB-check", base_url=f"{BASE}/bot") as bot:
        await step(
            "getMe",
            bot.get_me(),
            lambda me: None if me.is_bot and me.username else f"odd user {me}",
        )
        await step(
            "sendMessage",
            bot.send_message(CHAT, "hello from python-telegram-bot"),
            lambda m: None if m.text.startswith("hello") and m.chat.id == CHAT else f"{m}",
        )
        await step(
            "sendPhoto (bytes upload)",
            bot.send_photo(CHAT, photo=PNG, caption="a pixel"),
            lambda m: None
            if m.photo and m.photo[-1].width > 0 and m.photo[-1].file_id and m.caption == "a pixel"
            else f"{m.photo}",
        )
        await step(
            "getChat",
            bot.get_chat(CHAT),
            lambda c: None if c.id == CHAT and c.accepted_gift_types is not None else f"{c}",
        )
        await step(
            "sendInvoice (XTR)",
            bot.send_invoice(
                CHAT,
                title="Premium",
                description="30 days of premium",
                payload="premium_month",
                currency="XTR",
                prices=[LabeledPrice("Premium", 100)],
            ),
            lambda m: None
            if m.invoice and m.invoice.currency == "XTR" and m.invoice.total_amount == 100
            else f"{m.invoice}",
        )
        if hasattr(bot, "send_message_draft"):
            await step(
                "sendMessageDraft",
                bot.send_message_draft(CHAT, draft_id=1, text="typing..."),
                lambda ok: None if ok is True else f"{ok!r}",
            )

        pushed = control("POST", "updates", {"text": "/start", "from": {"id": CHAT, "first_name": "Ann"}})
        print(f"     pushed update {pushed['update_id']} via POST /_fake/updates ({pushed['delivered_to']})")
        await step(
            "getUpdates",
            bot.get_updates(timeout=1),
            lambda updates: None
            if updates
            and updates[-1].update_id == pushed["update_id"]
            and updates[-1].message.text == "/start"
            and updates[-1].effective_user.first_name == "Ann"
            else f"{updates}",
        )

    calls = control("GET", "calls")["calls"]
    print(f"     the fake recorded: {', '.join(c['method'] for c in calls)}")
    if failures:
        print(f"{failures} call(s) failed")
        sys.exit(1)
    print("all calls passed")


asyncio.run(main())
