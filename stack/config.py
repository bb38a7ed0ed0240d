"""Stack configuration: read every key once, validate everything up front, fail with messages naming the key."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pulumi

from chatapp import defaults
from stack.presets import DEFAULT_DIGEST, DEFAULT_IMAGE, DEFAULT_PRESET, PRESETS, Preset

PROJECT = "hybrid-chat"

# The single source of the defaults; Pulumi.yaml repeats them for `pulumi config` users and a test keeps the two equal.
DEFAULTS: dict[str, str | int | bool] = {
    "clusterName": "gradio-chat-cluster",
    "firestoreDatabase": defaults.FIRESTORE_DATABASE,
    "firestoreLocation": "nam5",
    "gemmaEnabled": True,
    # A preset of stack/presets.py, or a Hugging Face id (then gemmaGpus and gemmaVllmArgs are required).
    "gemmaModel": DEFAULT_PRESET,
    # 0 / empty: the preset's own.
    "gemmaGpus": 0,
    "gemmaAccelerator": "",
    "gemmaSpot": False,
    # Minutes without a turn that wanted Gemma before its GPU pod is scaled to zero; 0 keeps it always on.
    "gemmaIdleMinutes": 30,
    "vllmImage": "",
    # Checked 2026-12-06: gemini-2.5-flash was retired in October 2026; 3.8 Flash is served from `global` and
    # the multi-regions, not from a cluster region such as us-central1.
    "geminiModel": defaults.GEMINI_MODEL,
    "geminiLocation": defaults.GEMINI_LOCATION,
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
# vLLM arguments that name where the weights or the tokenizer come from (the stack sets `--model` itself).
ELSEWHERE_ARGS = ("--model", "--tokenizer")
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
    gemma: Preset
    """The model server: the chosen preset with the config's overrides applied."""
    gemma_spot: bool
    gemma_idle_minutes: int
    """0: always on (no autoscaler); else minutes without demand before the model server scales to zero."""
    gemini_model: str
    gemini_location: str
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
    gemma = _gemma(r, gemma_enabled)
    gemma_spot = r.boolean("gemmaSpot")
    idle_minutes = r.integer("gemmaIdleMinutes")
    r.check(idle_minutes >= 0, f"{PROJECT}:gemmaIdleMinutes must be 0 (always on) or more, got {idle_minutes}")
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
    for key in ("gemmaModel", "geminiModel", "geminiLocation"):
        r.check(bool(r.text(key)), f"{PROJECT}:{key} must not be empty")

    # Optional: the weights Job sends it when given (gated models need it) and says so when a model is gated.
    hf_token = r.own.get_secret("hfToken")
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
        gemma=gemma,
        gemma_spot=gemma_spot,
        gemma_idle_minutes=idle_minutes,
        gemini_model=r.text("geminiModel"),
        gemini_location=r.text("geminiLocation"),
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


def _extra_args(r: _Reader) -> tuple[str, ...]:
    try:
        extra = r.own.get_object("gemmaVllmArgs") or []
    except pulumi.ConfigTypeError:  # not JSON
        extra = None
    ok = isinstance(extra, list) and all(isinstance(a, str) and a.startswith("--") for a in extra)
    r.check(
        ok,
        f"{PROJECT}:gemmaVllmArgs must be a list of vLLM arguments such as --max-model-len=16384: "
        "`pulumi config set --path 'gemmaVllmArgs[0]' -- --max-model-len=16384`",
    )
    # The model server reads the bucket's copy only and runs offline (stack/gemma.py): an argument naming another
    # source would crash-loop a GPU pod at every wake-up instead of failing here.
    elsewhere = [a for a in extra or [] if isinstance(a, str) and a.split("=", 1)[0] in ELSEWHERE_ARGS]
    r.check(
        not elsewhere,
        f"{PROJECT}:gemmaVllmArgs must not name where the model comes from ({', '.join(elsewhere)}): the stack "
        "serves the copy the weights Job made in the bucket, offline; change gemmaModel instead",
    )
    return tuple(extra) if ok and isinstance(extra, list) and not elsewhere else ()


def _gemma(r: _Reader, enabled: bool) -> Preset:
    """The preset `gemmaModel` names, or a Hugging Face id with its GPUs and vLLM arguments given explicitly."""
    name, extra = r.text("gemmaModel"), _extra_args(r)
    gpus, accelerator, image = r.integer("gemmaGpus"), r.text("gemmaAccelerator"), r.text("vllmImage")
    r.check(gpus == 0 or gpus in GPU_COUNTS, f"{PROJECT}:gemmaGpus must be 1, 2, 4 or 8 (0: the preset's), got {gpus}")
    # A preset by its name, or by its model id (stacks that named the Hugging Face id before presets existed).
    preset = PRESETS.get(name) or next((p for p in PRESETS.values() if p.model == name), None)
    if preset is None:
        is_id = "/" in name
        r.check(
            not enabled or (is_id and gpus in GPU_COUNTS and bool(extra)),
            f"{PROJECT}:gemmaModel {name!r} is not a preset ({', '.join(PRESETS)}). A Hugging Face id "
            "(owner/name) is served too, with its GPUs and vLLM arguments given explicitly: "
            "`pulumi config set gemmaGpus 2` and `pulumi config set --path 'gemmaVllmArgs[0]' -- "
            "--max-model-len=16384` (see README, Models)",
        )
        # Sized from its bf16 weights (two bytes per parameter the id names), unless it says it is quantized.
        quantized = any(a.startswith("--quantization") for a in extra)
        needed = None if quantized else minimum_gpus(name, accelerator or "nvidia-l4")
        r.check(
            not enabled or gpus not in GPU_COUNTS or needed is None or gpus >= needed,
            f"{PROJECT}:gemmaGpus is {gpus}, but {name} (bf16 weights) needs at least {needed} "
            f"{accelerator or 'nvidia-l4'} GPUs: run `pulumi config set gemmaGpus {needed}`",
        )
        preset = Preset(
            model=name,
            gpus=max(gpus, 1),
            accelerator="nvidia-l4",
            image=DEFAULT_IMAGE,
            digest=DEFAULT_DIGEST,
            weights_gb=weights_gb(name) or 0.0,
            max_model_len=0,
        )
    elif gpus:
        r.check(
            not enabled or gpus >= preset.gpus,
            f"{PROJECT}:gemmaGpus is {gpus}, but the preset {name} needs at least {preset.gpus}: "
            "`pulumi config rm gemmaGpus` uses the preset's",
        )
    chosen = _override(preset, gpus, accelerator, image, extra)
    # vllm#51744, #52768 (checked 2026-12-06): Gemma 4 fails to start on vLLM 0.27.x.
    r.check(
        not enabled or "gemma-4" not in chosen.model or ":v0.27." not in chosen.image,
        f"{PROJECT}:vllmImage {chosen.image} fails to start Gemma 4 (vLLM 0.27.x): keep the preset's "
        f"(`pulumi config rm vllmImage`, {DEFAULT_IMAGE})",
    )
    return chosen


def _override(preset: Preset, gpus: int, accelerator: str, image: str, extra: tuple[str, ...]) -> Preset:
    return replace(
        preset,
        gpus=gpus or preset.gpus,
        accelerator=accelerator or preset.accelerator,
        # Another image by tag drops the preset's digest (it pins the preset's tag only).
        image=image or preset.image,
        digest="" if image and image != preset.image else preset.digest,
        extra_args=(*preset.extra_args, *extra),
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
