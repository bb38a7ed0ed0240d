"""hybrid-chat's chat service: Gradio on FastAPI, a self-hosted model and Gemini, history in Firestore or SQLite.

Importing the package does nothing: the stack imports `chatapp.defaults` inside Pulumi, which runs this file
first. What Gradio needs set before it runs is set by `chatapp.gradio_compat`.
"""
