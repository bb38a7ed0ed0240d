"""The one source of every default the chat and its stack share (ports, limits, model ids, generation values).

Imported by `chatapp/settings.py` and the rest of the chat, and by the Pulumi program in `stack/`: so it imports
nothing (not even the standard library) and does nothing when imported, and neither may `chatapp/__init__.py`,
which any `import chatapp.defaults` runs first (tests/infra/test_presets.py checks both).
"""

# The chat's HTTP port (CHAT_PORT) and Prometheus' own port (CHAT_METRICS_PORT; never behind the front door).
CHAT_PORT = 7860
CHAT_METRICS_PORT = 9090
# Generations one chat replica runs at once (CHAT_CONCURRENCY): also vLLM's --max-num-seqs and the self-hosted
# client's connection pool.
CHAT_CONCURRENCY = 64
# Seconds the chat waits on a model (CHAT_REQUEST_TIMEOUT); the load balancer's backend timeout must exceed it.
CHAT_REQUEST_TIMEOUT_S = 120

# Checked 2026-12-06: the stack's default Gemma preset (Gemma 4 31B, Google's 4-bit QAT checkpoint, on 2 L4s).
SELF_HOSTED_MODEL = "google/gemma-4-31b-it-qat-w4a16-ct"
# Checked 2026-12-06: gemini-2.5-flash was retired on Vertex AI in October 2026; 3.8 Flash retires Sep 2027 at
# the earliest, and is served from `global` and the `us`/`eu` multi-regions, not from a cluster's region.
GEMINI_MODEL = "gemini-3.8-flash"
GEMINI_LOCATION = "global"
FIRESTORE_DATABASE = "chat-app-db"

# What a model offers when it has no defaults of its own (the page's sliders start here).
TEMPERATURE = 0.7
TOP_P = 0.95
MAX_TOKENS = 1024

# Images one message may carry, and so one prompt at most (vLLM's --limit-mm-per-prompt accepts as many).
IMAGES_PER_MESSAGE = 5
