# The chat service image: only the app and its dependencies (no Pulumi), running as a non-root user.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    # The root filesystem may be read-only in Kubernetes; Gradio and the SDKs write their caches here.
    HOME=/tmp \
    GRADIO_TEMP_DIR=/tmp/gradio \
    CHAT_HOST=0.0.0.0 \
    CHAT_PORT=7860

WORKDIR /app
COPY pyproject.toml README.md ./
COPY chatapp ./chatapp
RUN pip install --no-cache-dir . \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin chat

USER 10001:10001
EXPOSE 7860
CMD ["python", "-m", "chatapp"]
