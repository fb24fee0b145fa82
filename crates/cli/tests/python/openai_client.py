"""The official `openai` package against holdfast: non-streaming, streaming, tool calls.

Why: holdfast's promise is that a user points their SDK at it and changes nothing else.
Each ROUTE=TARGET argument names a route whose first target fails and the target that
must serve it (a fallback, possibly in the other wire format).

With `--recovery ROUTE ANSWER`, one streamed request on ROUTE, whose first target cuts
its stream after a few chunks, must read as one coherent answer: the deltas joined are
exactly ANSWER (the mocks' scripted text), under one chunk id, with a single `stop`.

usage: python3 openai_client.py BASE_URL API_KEY ROUTE=TARGET [ROUTE=TARGET ...]
       python3 openai_client.py BASE_URL API_KEY --recovery ROUTE ANSWER
Exits 0 when every check passes; otherwise prints what failed and exits 1.
"""

import json
import sys

import openai

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
MESSAGES = [{"role": "user", "content": "Say something scripted."}]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def served_by(response, route, target):
    got = response.headers.get("x-holdfast-target")
    check(got == target, f"{route}: served by {got!r}, want {target!r}")


def non_streaming(client, route, target):
    raw = client.chat.completions.with_raw_response.create(model=route, messages=MESSAGES, max_tokens=200)
    served_by(raw, route, target)
    completion = raw.parse()
    choice = completion.choices[0]
    check(choice.message.role == "assistant", f"{route}: role {choice.message.role!r}")
    check(bool(choice.message.content), f"{route}: empty content")
    check(choice.finish_reason == "stop", f"{route}: finish_reason {choice.finish_reason!r}")
    check(completion.usage is not None and completion.usage.completion_tokens > 0, f"{route}: usage {completion.usage}")
    return choice.message.content


def streaming(client, route, target):
    stream = client.chat.completions.create(
        model=route,
        messages=MESSAGES,
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
    )
    served_by(stream.response, route, target)
    text, finishes, usage = [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    check(finishes == ["stop"], f"{route}: stream finish reasons {finishes}")
    check(usage is not None and usage.completion_tokens > 0, f"{route}: stream usage {usage}")
    return "".join(text)


def tool_call(client, route, target):
    raw = client.chat.completions.with_raw_response.create(
        model=route,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
        max_tokens=200,
    )
    served_by(raw, route, target)
    choice = raw.parse().choices[0]
    check(choice.finish_reason == "tool_calls", f"{route}: tool finish_reason {choice.finish_reason!r}")
    calls = choice.message.tool_calls or []
    check(len(calls) == 1, f"{route}: {len(calls)} tool calls")
    check(calls[0].function.name == "get_weather", f"{route}: tool {calls[0].function.name!r}")
    json.loads(calls[0].function.arguments)
    check(bool(calls[0].id), f"{route}: tool call without an id")


def streaming_tool_call(client, route, target):
    stream = client.chat.completions.create(
        model=route,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
        max_tokens=200,
        stream=True,
    )
    served_by(stream.response, route, target)
    names, arguments, finishes = [], [], []
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments.append(call.function.arguments)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    check(names == ["get_weather"], f"{route}: streamed tool names {names}")
    json.loads("".join(arguments) or "{}")
    check(finishes == ["tool_calls"], f"{route}: streamed tool finish reasons {finishes}")


def recovered_stream(client, route, answer):
    stream = client.chat.completions.create(
        model=route,
        messages=MESSAGES,
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finishes, ids, usage = [], [], set(), None
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    joined = "".join(text)
    check(joined == answer, f"{route}: recovered stream {joined!r} != scripted {answer!r}")
    check(finishes == ["stop"], f"{route}: recovered stream finish reasons {finishes}")
    check(len(ids) == 1, f"{route}: chunk ids {ids}")
    check(usage is not None and usage.completion_tokens > 0, f"{route}: recovered stream usage {usage}")


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=20)
    if sys.argv[3] == "--recovery":
        if len(sys.argv) != 6:
            print(__doc__)
            return 2
        route, answer = sys.argv[4], sys.argv[5]
        try:
            recovered_stream(client, route, answer)
            print(f"ok: openai streaming recovered via {route}")
            return 0
        except Exception as e:  # reported, not raised: the test reads stdout
            print(f"FAIL: openai streaming recovered via {route}: {type(e).__name__}: {e}")
            return 1
    failures = 0
    for spec in sys.argv[3:]:
        route, target = spec.split("=", 1)
        for name, run in [
            ("non-streaming", non_streaming),
            ("streaming", streaming),
            ("tool call", tool_call),
            ("streaming tool call", streaming_tool_call),
        ]:
            try:
                result = run(client, route, target)
                if name == "streaming":
                    whole = non_streaming(client, route, target)
                    check(result == whole, f"{route}: streamed {result!r} != whole {whole!r}")
                print(f"ok: openai {name} via {route} -> {target}")
            except Exception as e:  # report every check, not only the first
                failures += 1
                print(f"FAIL: openai {name} via {route}: {type(e).__name__}: {e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
