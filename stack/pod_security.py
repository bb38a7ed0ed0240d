"""Pod security for the stack's workloads: who each container runs as, what it may do, and where a read-only
root filesystem leaves it room to write.

Every container gets Kubernetes' "restricted" profile: non-root with a fixed high uid/gid (a uid that no user
of the node has, so an escape maps to nobody), no privilege escalation, every capability dropped (NET_RAW
included), a read-only root filesystem and the runtime's default seccomp profile. `make test` holds the
rendered manifests to this with a CIS-aligned scan (tests/infra/test_policy_scan.py).

The vLLM image (model server and weights Job) is built to run as root and writes below $HOME: as non-root it
gets a HOME and every cache on emptyDir volumes (`vllm_container`, `VLLM_VOLUMES`). GPUs need no privilege:
GKE's NVIDIA device plugin hands the container its /dev/nvidia* nodes (cgroup "rw", created world-usable by
the driver's default NVreg_DeviceFileMode=0666) and mounts the driver libraries read-only, whatever the uid.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

# The chat image's own user (Dockerfile).
CHAT_UID = 10001
# Whoever runs the vLLM image here: not in its /etc/passwd (hence USER below), high like the chat's.
MODEL_UID = 10002

# Where vLLM's own non-root notes put writable paths (images since vllm#40275 ship a `vllm` user, uid 2000,
# with this HOME). v0.10.2 has no such directory: the kubelet creates the mount point before it makes the
# root filesystem read-only. Python and the packages are world-readable in both (v0.10.2: /usr/bin and
# /usr/local/lib; later: /opt/uv, a+rX), so any uid can run them. 2000 is below the high-uid rule: 10002 it is.
VLLM_HOME = "/home/vllm"
# Every path vLLM (v0.10.2 and v0.26.0, the presets' images) and the libraries it loads write to, per their
# documented variables; all below VLLM_HOME (an emptyDir) or /tmp (another), never /root/.cache or /root/.triton.
VLLM_CACHE_ENV = {
    "HOME": VLLM_HOME,
    # torch's inductor cache and Triton name their folders after getpass.getuser(), which raises KeyError for
    # a uid missing from /etc/passwd unless one of these variables answers first.
    "USER": "vllm",
    "LOGNAME": "vllm",
    "XDG_CACHE_HOME": f"{VLLM_HOME}/.cache",
    "XDG_CONFIG_HOME": f"{VLLM_HOME}/.config",
    "HF_HOME": f"{VLLM_HOME}/.cache/huggingface",
    # torch.compile artefacts and CUDA graph captures.
    "VLLM_CACHE_ROOT": f"{VLLM_HOME}/.cache/vllm",
    "VLLM_CONFIG_ROOT": f"{VLLM_HOME}/.config/vllm",
    # Otherwise vLLM writes a usage-stats file there and posts it to stats.vllm.ai.
    "VLLM_NO_USAGE_STATS": "1",
    "TRITON_CACHE_DIR": f"{VLLM_HOME}/.triton/cache",
    "TORCHINDUCTOR_CACHE_DIR": f"{VLLM_HOME}/.cache/torchinductor",
    "CUDA_CACHE_PATH": f"{VLLM_HOME}/.nv/ComputeCache",
    "FLASHINFER_WORKSPACE_BASE": VLLM_HOME,
    "NUMBA_CACHE_DIR": f"{VLLM_HOME}/.cache/numba",
    "OUTLINES_CACHE_DIR": f"{VLLM_HOME}/.cache/outlines",
    # Python's tempfile, and vLLM's IPC sockets between the API server and the engine (VLLM_RPC_BASE_PATH).
    "TMPDIR": "/tmp",
}
# Compiled kernels and graphs of one model are a few hundred MB; both count against ephemeral storage.
VLLM_VOLUMES = [
    k8s.core.v1.VolumeArgs(name="vllm-home", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="4Gi")),
    k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi")),
]
VLLM_MOUNTS = [
    k8s.core.v1.VolumeMountArgs(name="vllm-home", mount_path=VLLM_HOME),
    k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
]


def container_context() -> k8s.core.v1.SecurityContextArgs:
    """The restricted profile's container half (the pod half is `pod_context`)."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    )


def pod_context(uid: int, fs_group: bool = False) -> k8s.core.v1.PodSecurityContextArgs:
    """Non-root as `uid`:`uid` with the runtime's default seccomp profile. `fs_group` makes mounted Secret
    files group-readable to that gid (kubelet sets their group); pods without Secret files leave it off."""
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid if fs_group else None,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def restricted(container: k8s.core.v1.ContainerArgs) -> k8s.core.v1.ContainerArgs:
    """`container` with the restricted container securityContext (replacing any it had)."""
    container.security_context = container_context()
    return container


def vllm_container(container: k8s.core.v1.ContainerArgs) -> k8s.core.v1.ContainerArgs:
    """A vLLM-image container made to run as non-root on a read-only root filesystem: restricted, with
    VLLM_CACHE_ENV (replacing any variable of the same name) and VLLM_MOUNTS. Its pod needs VLLM_VOLUMES."""
    kept = [var for var in container.env or [] if var.name not in VLLM_CACHE_ENV]
    container.env = [*kept, *(k8s.core.v1.EnvVarArgs(name=name, value=value) for name, value in VLLM_CACHE_ENV.items())]
    container.volume_mounts = [*(container.volume_mounts or []), *VLLM_MOUNTS]
    return restricted(container)


# The Hugging Face token as a file, not an environment variable: every child process inherits the environment
# and crash reporters and debug dumps print it, while the file is readable only by the pod's group (0440 and
# fsGroup) and follows a rotated Secret. huggingface_hub reads the file HF_TOKEN_PATH names (get_token()).
HF_TOKEN_DIR = "/var/run/secrets/huggingface"
HF_TOKEN_FILE = "token"


def hf_token_file(
    secret: str, key: str
) -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs, k8s.core.v1.EnvVarArgs]:
    """The volume (key `key` of Secret `secret`), its read-only mount and HF_TOKEN_PATH for the container.
    The pod needs `pod_context(uid, fs_group=True)` for the file to be readable."""
    volume = k8s.core.v1.VolumeArgs(
        name="hf-token",
        secret=k8s.core.v1.SecretVolumeSourceArgs(
            secret_name=secret,
            items=[k8s.core.v1.KeyToPathArgs(key=key, path=HF_TOKEN_FILE)],
            default_mode=0o440,
        ),
    )
    mount = k8s.core.v1.VolumeMountArgs(name="hf-token", mount_path=HF_TOKEN_DIR, read_only=True)
    return volume, mount, k8s.core.v1.EnvVarArgs(name="HF_TOKEN_PATH", value=f"{HF_TOKEN_DIR}/{HF_TOKEN_FILE}")
