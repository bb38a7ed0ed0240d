"""hybrid-chat's chat service: Gradio on FastAPI, a self-hosted model and Gemini, history in Firestore or SQLite."""

import os

# Gradio reads this when it is imported; a private chat must not report usage to anyone.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
