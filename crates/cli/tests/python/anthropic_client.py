"""The official `anthropic` package against holdfast: non-streaming and streaming.

Why: a user of the Anthropic SDK points it at holdfast and changes nothing else. Each
ROUTE=TARGET argument names a route whose first target fails and the target that must
serve it (a fallback, possibly in the other wire format).

usage: python3 anthropic_client.py BASE_URL API_KEY ROUTE=TARGET [ROUTE=TARGET ...]
Exits 0 when every check passes; otherwise prints what failed and exits 1.
"""

import sys

import anthropic

MESSAGES = [{"role": "user", "content": "Say something scripted."}]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def served_by(response, route, target):
    got = response.headers.get("x-holdfast-target")
    check(got == target, f"{route}: served by {got!r}, want {target!r}")


def non_streaming(client, route, target):
    raw = client.messages.with_raw_response.create(model=route, max_tokens=200, messages=MESSAGES)
    served_by(raw, route, target)
    message = raw.parse()
    check(message.type == "message" and message.role == "assistant", f"{route}: {message.type} {message.role}")
    texts = [block.text for block in message.content if block.type == "text"]
    check(texts and texts[0], f"{route}: no text in {message.content}")
    check(message.stop_reason == "end_turn", f"{route}: stop_reason {message.stop_reason!r}")
    check(message.usage.output_tokens > 0, f"{route}: usage {message.usage}")
    return "".join(texts)


def streaming(client, route, target):
    stream = client.messages.create(model=route, max_tokens=200, messages=MESSAGES, stream=True)
    served_by(stream.response, route, target)
    text, types, stop_reason = [], [], None
    for event in stream:
        types.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text.append(event.delta.text)
        if event.type == "message_delta":
            stop_reason = event.delta.stop_reason
    check(types[:1] == ["message_start"], f"{route}: first event {types[:1]}")
    check(types[-1:] == ["message_stop"], f"{route}: last event {types[-1:]}")
    check(stop_reason == "end_turn", f"{route}: stream stop_reason {stop_reason!r}")
    return "".join(text)


def helper_stream(client, route):
    with client.messages.stream(model=route, max_tokens=200, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(final.stop_reason == "end_turn", f"{route}: helper stop_reason {final.stop_reason!r}")
    return text


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
    failures = 0
    for spec in sys.argv[3:]:
        route, target = spec.split("=", 1)
        try:
            whole = non_streaming(client, route, target)
            print(f"ok: anthropic non-streaming via {route} -> {target}")
            streamed = streaming(client, route, target)
            check(streamed == whole, f"{route}: streamed {streamed!r} != whole {whole!r}")
            print(f"ok: anthropic streaming via {route} -> {target}")
            helped = helper_stream(client, route)
            check(helped == whole, f"{route}: stream helper {helped!r} != whole {whole!r}")
            print(f"ok: anthropic stream helper via {route}")
        except Exception as e:  # report every route, not only the first failure
            failures += 1
            print(f"FAIL: anthropic via {route}: {type(e).__name__}: {e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
