"""The official openai Python SDK, unmodified, pointed at agentcore-gateway."""
import json

import pytest

from conftest import KEY_A, capture, directive, user

openai = pytest.importorskip("openai")


@pytest.fixture()
def client(gw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def raw(resp):
    """The JSON body of a with_raw_response result."""
    return json.loads(resp.http_response.text)


def test_sdk_chat(client):
    r = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hello sdk"}])
    capture("CreateChatCompletionResponse", raw(r), "sdk-chat")
    c = r.parse()
    assert c.choices[0].message.content == "fake reply to: hello sdk"
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.total_tokens > 0
    assert r.headers["x-agentcore-model"] == "fast"


def test_sdk_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "stream via sdk"}], stream=True,
        stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        capture("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True),
                "sdk-chunk")
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "fake reply to: stream via sdk"
    assert usage is not None and usage.total_tokens > 0


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def test_sdk_tools_round_trip(client, fake):
    fake.script([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}])
    msgs = [{"role": "user", "content": "weather in Paris?"}]
    r = client.chat.completions.with_raw_response.create(model="fast", messages=msgs,
                                                         tools=TOOLS)
    capture("CreateChatCompletionResponse", raw(r), "sdk-tool-call")
    c = r.parse()
    assert c.choices[0].finish_reason == "tool_calls"
    call = c.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    msgs.append(c.choices[0].message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'})
    c2 = client.chat.completions.create(model="fast", messages=msgs, tools=TOOLS)
    assert c2.choices[0].finish_reason == "stop"
    assert c2.choices[0].message.content == "fake reply to: weather in Paris?"
    sent = fake.last_request()["body"]["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == call.id


def test_sdk_streamed_tool_call(client, fake):
    fake.script([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=TOOLS,
        stream=True)
    args, name, finish = "", None, None
    for chunk in stream:
        capture("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True),
                "sdk-tool-chunk")
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                name = tc.function.name or name
                args += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    assert name == "get_weather" and json.loads(args) == {"city": "Oslo"}
    assert finish == "tool_calls"


def test_sdk_embeddings_default_base64_and_float(client):
    default = client.embeddings.create(model="emb", input=["alpha", "beta"])
    r = client.embeddings.with_raw_response.create(model="emb", input=["alpha", "beta"],
                                                  encoding_format="float")
    capture("CreateEmbeddingResponse", raw(r), "sdk-embeddings")
    floats = r.parse()
    assert len(default.data) == 2 and len(default.data[0].embedding) == 8
    for a, b in zip(default.data, floats.data):
        assert all(abs(x - y) < 1e-6 for x, y in zip(a.embedding, b.embedding))


def test_sdk_models(client):
    r = client.models.with_raw_response.list()
    capture("ListModelsResponse", raw(r), "sdk-models")
    ids = [m.id for m in r.parse()]
    assert "fast" in ids and "emb" in ids
    assert client.models.retrieve("fast").id == "fast"


def test_sdk_errors(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="missing", messages=[{"role": "user",
                                                                   "content": "x"}])
    assert e.value.status_code == 404 and e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fast", messages="not a list")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**user("x" + directive({"status": 429,
                                                               "retry_after": "0"})))
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(**user("x" + directive({"status": 500,
                                                               "message": "boom"})))
    assert e.value.status_code == 502 and "boom" in e.value.message


def test_sdk_error_inside_stream(client):
    stream = client.chat.completions.create(
        stream=True, **user("a long enough answer" + directive({"status": 500, "cut_after": 3,
                                                                "message": "cut"})))
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert "cut" in str(e.value)


def test_sdk_bad_key(gw_keys):
    c = openai.OpenAI(base_url=gw_keys.url + "/v1", api_key="sk-wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()
    c = openai.OpenAI(base_url=gw_keys.url + "/v1", api_key=KEY_A, max_retries=0)
    assert any(m.id == "fast" for m in c.models.list())


def test_sdk_session_via_extra_body_and_headers(client, gw, fake):
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "I am Bo"}],
                                   extra_body={"session_id": "sdk-s1"})
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "who?"}],
                                   extra_headers={"X-Session-Id": "sdk-s1"})
    sent = [m["content"] for m in fake.last_request()["body"]["messages"]]
    assert "I am Bo" in sent and "who?" in sent
    s, _, b = gw.request("GET", "/v1/sessions/sdk-s1")
    assert s == 200 and b["turns"] == 2
