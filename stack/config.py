"""Stack configuration: read every key once, validate everything up front, fail with messages naming the key."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

PROJECT = "hybrid-chat"

# The single source of the defaults; Pulumi.yaml repeats them for `pulumi config` users and a test keeps the two equal.
DEFAULTS: dict[str, str | int | bool] = {
    "clusterName": "gradio-chat-cluster",
    "firestoreDatabase": "chat-app-db",
    "firestoreLocation": "nam5",
    "gemmaEnabled": True,
    "gemmaModel": "google/gemma-3-12b-it",
    "gemmaGpus": 2,
    "gemmaAccelerator": "nvidia-l4",
    "gemmaSpot": False,
    "vllmImage": "vllm/vllm-openai:v0.10.2",
    "geminiModel": "gemini-2.5-flash",
    "chatReplicas": 1,
    "chatMaxReplicas": 4,
    "chatImage": "",
    "frontDoor": "iap",
    "domain": "",
    "iapClientId": "",
    "alertEmail": "",
    "chatDailyTokens": 0,
}
DEFAULT_REGION = "us-central1"

# GKE: lowercase letter first, at most 40 characters. Firestore database ids: 4-63 characters.
_CLUSTER_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
_DATABASE_ID = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")
# Front door: IAM members IAP accepts, and a DNS name a Google-managed certificate can cover (no wildcard).
FRONT_DOORS = ("iap", "password")
_MEMBER = re.compile(
    r"^(?:(?:user|group|serviceAccount):[^@\s:]+@[a-z0-9.-]+\.[a-z]{2,}|domain:[a-z0-9.-]+\.[a-z]{2,})$"
)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
# GPUs per node GKE offers (and vLLM needs the attention heads to split evenly across them).
GPU_COUNTS = (1, 2, 4, 8)
# Memory per GPU in GB, for the accelerators whose fit we can check; others are taken on trust.
GPU_MEMORY_GB = {
    "nvidia-l4": 24,
    "nvidia-tesla-t4": 16,
    "nvidia-tesla-a100": 40,
    "nvidia-a100-80gb": 80,
    "nvidia-h100-80gb": 80,
}
# Share of GPU memory the bf16 weights may take: vLLM needs the rest for activations and the KV cache.
WEIGHTS_SHARE = 0.75
_PARAMS = re.compile(r"(?:^|[-_])(\d+(?:\.\d+)?)b(?:$|[-_])", re.IGNORECASE)


class ConfigError(ValueError):
    """Raised with every problem found, one line per key, before any resource is declared."""


@dataclass(frozen=True)
class StackConfig:
    project: str
    region: str
    cluster_name: str
    firestore_database: str
    firestore_location: str
    gemma_enabled: bool
    gemma_model: str
    gemma_gpus: int
    gemma_accelerator: str
    gemma_spot: bool
    vllm_image: str
    gemini_model: str
    chat_replicas: int
    chat_max_replicas: int
    chat_image: str | None
    alert_email: str | None
    chat_daily_tokens: int | None
    """Tokens in + out per person per UTC day (CHAT_DAILY_TOKENS); None: no limit."""
    # The Pulumi stack: scopes every project-wide name, so two stacks in one project never share one.
    stack: str
    hf_token: pulumi.Output[str] | None
    chat_auth_users: pulumi.Output[str] | None
    front_door: str
    domain: str | None
    chat_users: tuple[str, ...]
    """IAM members IAP lets in; empty means the identity running `pulumi up`."""
    iap_client_id: str | None
    iap_client_secret: pulumi.Output[str] | None


class _Reader:
    """Collects errors instead of stopping at the first, so one run shows everything to fix."""

    def __init__(self) -> None:
        self.own = pulumi.Config(PROJECT)
        self.gcp = pulumi.Config("gcp")
        self.errors: list[str] = []

    def text(self, key: str) -> str:
        value = self.own.get(key)
        return str(DEFAULTS[key]) if value is None else value.strip()

    def integer(self, key: str) -> int:
        raw = self.own.get(key)
        if raw is None:
            return int(DEFAULTS[key])
        try:
            return int(raw)
        except ValueError:
            self.errors.append(f"{PROJECT}:{key} must be a whole number, got {raw!r}")
            return int(DEFAULTS[key])

    def boolean(self, key: str) -> bool:
        raw = self.own.get(key)
        if raw is None:
            return bool(DEFAULTS[key])
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.errors.append(f"{PROJECT}:{key} must be true or false, got {raw!r}")
        return bool(DEFAULTS[key])

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.errors.append(message)


def weights_gb(model: str) -> float | None:
    """bf16 weights of `model` in GB (two bytes per parameter), from the size its id names (`…-12b-…`)."""
    found = _PARAMS.search(model.rsplit("/", 1)[-1])
    return None if found is None else 2 * float(found.group(1))


def minimum_gpus(model: str, accelerator: str) -> int | None:
    """Fewest GPUs (of GPU_COUNTS) whose memory holds `model`'s bf16 weights with room for the KV cache.

    None when unknown: the model id names no size or the accelerator is not in GPU_MEMORY_GB."""
    weights, memory = weights_gb(model), GPU_MEMORY_GB.get(accelerator)
    if weights is None or memory is None:
        return None
    return next((n for n in GPU_COUNTS if weights <= WEIGHTS_SHARE * memory * n), GPU_COUNTS[-1])


def load_config() -> StackConfig:
    r = _Reader()
    project = (r.gcp.get("project") or "").strip()
    r.check(bool(project), "gcp:project is not set: run `pulumi config set gcp:project <your-project-id>`")
    region = (r.gcp.get("region") or DEFAULT_REGION).strip()

    cluster_name = r.text("clusterName")
    r.check(
        bool(_CLUSTER_NAME.match(cluster_name)),
        f"{PROJECT}:clusterName {cluster_name!r} is not a GKE cluster name "
        "(lowercase letters, digits and hyphens, starting with a letter, at most 40 characters)",
    )
    database = r.text("firestoreDatabase")
    r.check(
        bool(_DATABASE_ID.match(database)),
        f"{PROJECT}:firestoreDatabase {database!r} is not a Firestore database id "
        "(4-63 lowercase letters, digits and hyphens, starting with a letter)",
    )
    location = r.text("firestoreLocation")
    r.check(bool(location), f"{PROJECT}:firestoreLocation must not be empty (e.g. nam5 or {DEFAULT_REGION})")

    gemma_enabled = r.boolean("gemmaEnabled")
    gpus = r.integer("gemmaGpus")
    # vLLM splits attention heads evenly across GPUs and GKE offers 1, 2, 4 or 8 GPUs per node for L4s.
    r.check(gpus in GPU_COUNTS, f"{PROJECT}:gemmaGpus must be 1, 2, 4 or 8, got {gpus}")
    model, accelerator = r.text("gemmaModel"), r.text("gemmaAccelerator")
    needed = minimum_gpus(model, accelerator)
    r.check(
        not gemma_enabled or gpus not in GPU_COUNTS or needed is None or gpus >= needed,
        f"{PROJECT}:gemmaGpus is {gpus}, but {model} (bf16 weights) needs at least {needed} {accelerator} GPUs: "
        f"run `pulumi config set gemmaGpus {needed}`",
    )
    gemma_spot = r.boolean("gemmaSpot")
    replicas = r.integer("chatReplicas")
    r.check(replicas >= 1, f"{PROJECT}:chatReplicas must be at least 1, got {replicas}")
    max_replicas = r.integer("chatMaxReplicas")
    r.check(
        max_replicas >= replicas,
        f"{PROJECT}:chatMaxReplicas ({max_replicas}) must be at least {PROJECT}:chatReplicas ({replicas})",
    )
    daily_tokens = r.integer("chatDailyTokens")
    r.check(daily_tokens >= 0, f"{PROJECT}:chatDailyTokens must be 0 (no limit) or more, got {daily_tokens}")
    alert_email = r.text("alertEmail")
    r.check(
        not alert_email or bool(_EMAIL.match(alert_email)),
        f"{PROJECT}:alertEmail {alert_email!r} is not one email address (leave it empty for no alert)",
    )
    for key in ("gemmaModel", "gemmaAccelerator", "vllmImage", "geminiModel"):
        r.check(bool(r.text(key)), f"{PROJECT}:{key} must not be empty")

    hf_token = r.own.get_secret("hfToken")
    r.check(
        hf_token is not None or not gemma_enabled,
        f"{PROJECT}:hfToken is not set but {PROJECT}:gemmaEnabled is true: run "
        "`pulumi config set --secret hfToken hf_...` (a Hugging Face token that accepted the Gemma licence), "
        "or `pulumi config set gemmaEnabled false`",
    )
    front_door, domain, chat_users, iap_client_secret = _front_door(r)
    if r.errors:
        raise ConfigError("invalid stack configuration:\n  - " + "\n  - ".join(r.errors))

    return StackConfig(
        project=project,
        region=region,
        cluster_name=cluster_name,
        firestore_database=database,
        firestore_location=location,
        gemma_enabled=gemma_enabled,
        gemma_model=model,
        gemma_gpus=gpus,
        gemma_accelerator=accelerator,
        gemma_spot=gemma_spot,
        vllm_image=r.text("vllmImage"),
        gemini_model=r.text("geminiModel"),
        chat_replicas=replicas,
        chat_max_replicas=max_replicas,
        chat_image=r.text("chatImage") or None,
        alert_email=alert_email or None,
        chat_daily_tokens=daily_tokens or None,
        stack=pulumi.get_stack(),
        hf_token=hf_token if gemma_enabled else None,
        chat_auth_users=r.own.get_secret("chatAuthUsers"),
        front_door=front_door,
        domain=domain,
        chat_users=chat_users,
        iap_client_id=r.text("iapClientId") or None,
        iap_client_secret=iap_client_secret,
    )


def _front_door(r: _Reader) -> tuple[str, str | None, tuple[str, ...], pulumi.Output[str] | None]:
    front_door = r.text("frontDoor").lower()
    r.check(
        front_door in FRONT_DOORS,
        f"{PROJECT}:frontDoor must be iap (Google sign-in) or password (CHAT_AUTH_USERS logins), got {front_door!r}; "
        "there is no plain-HTTP option",
    )
    domain = r.text("domain").lower().rstrip(".") or None
    r.check(
        domain is None or bool(_HOSTNAME.match(domain)),
        f"{PROJECT}:domain {domain!r} is not a DNS name a managed certificate can cover (e.g. chat.example.com, "
        "no wildcard, no scheme)",
    )
    try:
        users = r.own.get_object("chatUsers") or []
    except pulumi.ConfigTypeError:  # not JSON (the CLI stores lists set with --path as JSON)
        users = None
    r.check(
        isinstance(users, list),
        f"{PROJECT}:chatUsers must be a list: `pulumi config set --path 'chatUsers[0]' user:you@example.com`",
    )
    members = tuple(str(u).strip() for u in users) if isinstance(users, list) else ()
    for member in members:
        r.check(
            bool(_MEMBER.match(member)),
            f"{PROJECT}:chatUsers entry {member!r} is not an IAM member: use user:EMAIL, group:EMAIL, "
            "serviceAccount:EMAIL or domain:DOMAIN",
        )
    client_id = r.text("iapClientId")
    client_secret = r.own.get_secret("iapClientSecret")
    r.check(
        bool(client_id) == (client_secret is not None),
        f"{PROJECT}:iapClientId and {PROJECT}:iapClientSecret go together (a custom OAuth client): set both, "
        "`pulumi config set iapClientId ID` and `pulumi config set --secret iapClientSecret SECRET`, or neither",
    )
    r.check(
        front_door != "password" or r.own.get_secret("chatAuthUsers") is not None,
        f"{PROJECT}:frontDoor is password but {PROJECT}:chatAuthUsers is not set: run "
        "`pulumi config set --secret chatAuthUsers alice:long-password`",
    )
    # Keys of the other front door are kept (switching back needs no re-typing) but say that they do nothing.
    unused = ["chatAuthUsers"] if front_door == "iap" and r.own.get("chatAuthUsers") is not None else []
    if front_door == "password":
        unused += [key for key, value in (("chatUsers", members), ("iapClientId", client_id)) if value]
    for key in unused:
        pulumi.log.warn(f"{PROJECT}:{key} is ignored while {PROJECT}:frontDoor is {front_door}")
    return front_door, domain, members, client_secret
