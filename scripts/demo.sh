#!/bin/sh
# The demo: installs what is missing, builds, starts a model, and runs a
# scripted conversation through the `agentcore` CLI that shows memory across
# turns, a running summary taking over older turns, and usage at the end.
#
# The model: with OPENAI_API_KEY set, OpenAI's gpt-4o-mini; with
# ANTHROPIC_API_KEY, Anthropic's claude-3-5-haiku; with an Ollama server on
# 127.0.0.1:11434, its first model; otherwise the fake upstream from
# tests/fakes/ — a local stand-in that echoes what it receives, not a model.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sh scripts/deps.sh
sh scripts/build.sh build

work=$(mktemp -d)
fake_pid=""
cleanup() {
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

provider="" model="" window=2000
if [ -n "${OPENAI_API_KEY:-}" ]; then
    provider='{"kind":"openai","api_key_env":"OPENAI_API_KEY"}' model="gpt-4o-mini"
    what="OpenAI gpt-4o-mini"
elif [ -n "${ANTHROPIC_API_KEY:-}" ]; then
    provider='{"kind":"anthropic","api_key_env":"ANTHROPIC_API_KEY"}' model="claude-3-5-haiku-latest"
    what="Anthropic claude-3-5-haiku"
elif ollama_model=$(python3 - <<'EOF' 2>/dev/null
import json, urllib.request
with urllib.request.urlopen("http://127.0.0.1:11434/api/tags", timeout=1) as r:
    print(json.load(r)["models"][0]["name"])
EOF
); then
    provider='{"kind":"ollama","base_url":"http://127.0.0.1:11434"}' model="$ollama_model"
    what="Ollama $ollama_model"
else
    mkfifo "$work/fake.out"
    ./build/tests/fake-upstream --port 0 >"$work/fake.out" &
    fake_pid=$!
    read -r _ port <"$work/fake.out"
    provider="{\"kind\":\"openai\",\"base_url\":\"http://127.0.0.1:$port/v1\"}" model="fake-model"
    what="the fake upstream on 127.0.0.1:$port (a local stand-in that echoes, not a model)"
    window=260
fi

cat >"$work/agentcore.json" <<EOF
{
  "storage": {"path": "$work/demo.db"},
  "providers": {"demo": $provider},
  "models": [{"name": "demo", "provider": "demo", "model": "$model",
              "context_window": $window, "max_output_tokens": 60}],
  "default_model": "demo"
}
EOF
cli() { ./build/examples/agentcore --config "$work/agentcore.json" "$@"; }

echo "== libagentcore demo, talking to $what"
say() {
    printf '\n[you] %s\n[model] ' "$1"
    cli ask --session demo "$1"
}
say "Hi! My name is Ada and I am planning a trip to Lisbon in May."
say "I prefer trains to planes, and I travel with a bicycle."
say "What is my name, and where am I going?"
if [ -n "$fake_pid" ]; then
    python3 - "$port" <<'EOF'
import json, sys, urllib.request
port = sys.argv[1]
body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/requests?last=1"))["body"]
text = json.dumps(body["messages"])
print("\n== memory: turn 3's request to the model carries turn 1:",
      "yes" if "My name is Ada" in text else "NO", f"({len(body['messages'])} messages sent)")
EOF
fi
for q in "Which stations should I see?" "How long is the train from Madrid?" \
         "Can I take the bicycle on board?" "What about the weather in May?"; do
    say "$q"
done
echo
echo "== the session after $(cli sessions show demo | python3 -c 'import json,sys; print(json.load(sys.stdin)["turns"])') turns"
cli sessions show demo | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("summary standing in for older turns:", "yes" if s.get("summary") else "no")
if s.get("summary"):
    print("  " + s["summary"][:300])
'
echo
echo "== usage"
cli usage
