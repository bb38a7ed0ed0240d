"""Pod security as rendered (stack/pod_security.py, stack/egress.py): every pod non-root with a high uid on a
read-only root filesystem; vLLM's every cache on a mounted emptyDir; the Hugging Face token as a file; the
weights Job fenced to DNS, the metadata server and public HTTPS. The policy scan (test_policy_scan.py) checks the
generic rules with a third-party scanner; these check what it cannot know."""

import ipaddress
import posixpath

import pytest

from stack import gemma, pod_security
from stack.gemma import GemmaArgs
from stack.presets import DEFAULT_PRESET, PRESETS
from stack.weights import COPY_SCRIPT

WORKLOADS = [("Deployment", "chat"), ("Deployment", "gemma"), ("Job", "weights-copy")]
# Environment variables that name a place vLLM or a library under it writes to.
WRITABLE_PATH_VARIABLES = {name for name, value in pod_security.VLLM_CACHE_ENV.items() if value.startswith("/")}


def pod_spec(plan, kind, name):
    return plan.manifest(kind, name)["spec"]["template"]["spec"]


def containers(spec):
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize(("kind", "name"), WORKLOADS)
def test_every_container_runs_restricted_as_a_high_uid(default_plan, kind, name):
    spec = pod_spec(default_plan, kind, name)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] >= 10000 and pod["runAsGroup"] >= 10000  # above any user of the node
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False  # none of them calls the Kubernetes API
    for container in containers(spec):
        assert container["securityContext"] == {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, container["name"]


def test_vllm_writes_only_to_mounted_empty_dirs(default_plan):
    spec = pod_spec(default_plan, "Deployment", "gemma")
    (vllm,) = spec["containers"]
    env = {e["name"]: e["value"] for e in vllm["env"] if "value" in e}
    volumes = {v["name"]: v for v in spec["volumes"]}
    scratch = [m["mountPath"] for m in vllm["volumeMounts"] if "emptyDir" in volumes[m["name"]]]
    assert {"/tmp", pod_security.VLLM_HOME} <= set(scratch)
    assert {"HOME", "HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "TMPDIR"} <= WRITABLE_PATH_VARIABLES
    for variable in WRITABLE_PATH_VARIABLES:
        path = posixpath.normpath(env[variable])
        assert any(path == root or path.startswith(f"{root}/") for root in scratch), (variable, path)
    # The image's uid is not in its /etc/passwd: getpass.getuser() (torch, Triton) must find a name first.
    assert env["USER"] and env["LOGNAME"]
    assert env["HF_HOME"] != "/tmp/huggingface"  # one value per variable: the hardening replaced the old one
    assert len([e for e in vllm["env"] if e["name"] == "HF_HOME"]) == 1


def test_the_job_reads_the_token_from_a_file(default_plan):
    spec = pod_spec(default_plan, "Job", "weights-copy")
    (copy,) = spec["containers"]
    env = {e["name"]: e for e in copy["env"]}
    assert "HF_TOKEN" not in env
    token_path = env["HF_TOKEN_PATH"]["value"]
    (mount,) = [m for m in copy["volumeMounts"] if token_path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "hf-token"
    assert volume["secret"]["items"] == [{"key": "token", "path": posixpath.basename(token_path)}]
    assert volume["secret"]["defaultMode"] == 0o440  # group-readable through fsGroup only
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]
    assert "hub.get_token()" in COPY_SCRIPT and "HF_TOKEN'" not in COPY_SCRIPT
    # The files it writes through FUSE belong to the uid it runs as.
    (bucket,) = [v for v in spec["volumes"] if "csi" in v]
    uid = spec["securityContext"]["runAsUser"]
    assert f"uid={uid},gid={uid}" in bucket["csi"]["volumeAttributes"]["mountOptions"]


def test_the_job_reaches_only_dns_metadata_and_public_https(default_plan):
    policy = default_plan.manifest("NetworkPolicy", "weights-copy")["spec"]
    job = default_plan.manifest("Job", "weights-copy")["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= job["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress", "Egress"] and not policy.get("ingress")
    ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {53, 80, 8080, 987, 988, 443}
    inside = [ipaddress.ip_address(a) for a in ("10.8.0.5", "172.20.1.1", "192.168.1.1", "100.64.0.1", "fd20::1")]
    for rule in policy["egress"]:
        if {p["port"] for p in rule["ports"]} != {443}:
            # DNS and the metadata server: link-local addresses and kube-dns only.
            blocks = [ipaddress.ip_network(peer["ipBlock"]["cidr"]) for peer in rule["to"] if "ipBlock" in peer]
            assert all(block.is_link_local for block in blocks), blocks
            continue
        for peer in rule["to"]:
            block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            excluded = [ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", [])]
            for address in (a for a in inside if a.version == block.version and a in block):
                assert any(address in e for e in excluded), f"443 open to {address} (pods, nodes, the VPC)"


def test_gemmas_containers_leave_security_and_caches_to_pod_security():
    # stack/pod_security.py replaces these on the way into the Deployment; a value set in stack/gemma.py too is a
    # second source that reads as if it mattered (the old HF_HOME=/tmp/huggingface did not).
    args = GemmaArgs(
        preset=PRESETS[DEFAULT_PRESET],
        image=PRESETS[DEFAULT_PRESET].image_ref,
        spot=False,
        bucket="b",
        service_account="sa",
        readable=[],
        checksum_key="k",
        provider=None,  # type: ignore[arg-type]  # unused by the container builders
        namespace=None,  # type: ignore[arg-type]
    )
    for container in (gemma._container(args), gemma._wait_for_weights(args)):
        assert container.security_context is None, container.name
        names = {var.name for var in container.env or []}
        assert not names & pod_security.VLLM_CACHE_ENV.keys(), (container.name, names)
