"""The front door under mocks: HTTPS Gateway, managed certificate, IAP, access as code, no plain-HTTP path."""

from stack import kube
from stack.frontdoor import BACKEND_TIMEOUT_S, deployer_member, host_key, wildcard_hostname
from stack.mocks import FAKE_DEPLOYER_EMAIL, FAKE_LOAD_BALANCER_IP, FAKE_PROJECT_NUMBER
from tests.infra.rendering import CHAT_USERS, DOMAIN, IAP_CLIENT_ID, IAP_CLIENT_SECRET, PROJECT, fingerprint

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
NIP_HOST = "203-0-113-10.nip.io"
ALL_PLANS = ("default_plan", "gemma_off_plan", "scaled_plan", "password_plan")


def chat_env(plan):
    (container,) = plan.manifest("Deployment", "chat")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def backend_policy(plan):
    return plan.manifest("GCPBackendPolicy", "chat")["spec"]


def test_https_gateway_on_a_reserved_global_address(default_plan):
    address = default_plan.one("gcp:compute/globalAddress:GlobalAddress")["inputs"]
    assert address["addressType"] == "EXTERNAL" and address["project"] == PROJECT
    gateway = default_plan.manifest("Gateway", "chat")
    spec = gateway["spec"]
    assert spec["gatewayClassName"] == "gke-l7-global-external-managed"
    assert spec["addresses"] == [{"type": "NamedAddress", "value": address["name"]}]
    listeners = {listener["name"]: listener for listener in spec["listeners"]}
    assert listeners["https"] == {"name": "https", "protocol": "HTTPS", "port": 443}
    assert listeners["http"] == {"name": "http", "protocol": "HTTP", "port": 80}
    assert default_plan.outputs["ip"] == FAKE_LOAD_BALANCER_IP


def test_managed_certificate_through_a_certificate_map(default_plan):
    cert = default_plan.one("gcp:certificatemanager/certificate:Certificate")["inputs"]
    assert cert["managed"] == {"domains": [NIP_HOST]}
    assert "dnsAuthorizations" not in cert["managed"]  # load-balancer authorization: nothing to set up in DNS
    assert "selfManaged" not in cert
    certmap = default_plan.one("gcp:certificatemanager/certificateMap:CertificateMap")["inputs"]
    entry = default_plan.one("gcp:certificatemanager/certificateMapEntry:CertificateMapEntry")["inputs"]
    assert entry["map"] == certmap["name"]
    assert entry["hostname"] == NIP_HOST
    assert entry["certificates"] == ["frontdoor-cert-id"]  # the mock's id of the certificate above
    # Named after the hostname: a new name creates a new certificate and entry before the old pair goes.
    assert cert["name"] == entry["name"] == f"gradio-chat-cluster-{host_key(NIP_HOST)}"
    gateway = default_plan.manifest("Gateway", "chat")
    assert gateway["metadata"]["annotations"] == {"networking.gke.io/certmap": certmap["name"]}
    assert all("tls" not in listener for listener in gateway["spec"]["listeners"])  # never both ways at once


def test_hostname_derived_from_the_address_without_a_domain(default_plan):
    assert wildcard_hostname("203.0.113.10") == NIP_HOST
    assert default_plan.outputs["url"] == f"https://{NIP_HOST}"
    for name in ("chat", "chat-redirect"):
        assert default_plan.manifest("HTTPRoute", name)["spec"]["hostnames"] == [NIP_HOST]


def test_own_domain(scaled_plan):
    assert scaled_plan.outputs["url"] == f"https://{DOMAIN}"
    assert scaled_plan.one("gcp:certificatemanager/certificate:Certificate")["inputs"]["managed"]["domains"] == [DOMAIN]
    assert scaled_plan.manifest("HTTPRoute", "chat")["spec"]["hostnames"] == [DOMAIN]
    assert NIP_HOST not in scaled_plan.raw
    cert = scaled_plan.one("gcp:certificatemanager/certificate:Certificate")["inputs"]
    assert cert["name"] == f"gradio-chat-cluster-{host_key(DOMAIN)}" != f"gradio-chat-cluster-{host_key(NIP_HOST)}"


def test_plain_http_only_redirects(default_plan):
    redirect = default_plan.manifest("HTTPRoute", "chat-redirect")["spec"]
    assert redirect["parentRefs"] == [{"name": "chat", "sectionName": "http"}]
    (rule,) = redirect["rules"]
    assert rule == {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
    routes = [m for m in default_plan.data["manifests"] if m["kind"] == "HTTPRoute"]
    to_backends = [r for r in routes if any("backendRefs" in rule for rule in r["spec"]["rules"])]
    assert [r["metadata"]["name"] for r in to_backends] == ["chat"]
    assert to_backends[0]["spec"]["parentRefs"] == [{"name": "chat", "sectionName": "https"}]


def test_app_route_reaches_the_internal_chat_service(default_plan):
    service = default_plan.manifest("Service", "chat")
    (rule,) = default_plan.manifest("HTTPRoute", "chat")["spec"]["rules"]
    (port,) = service["spec"]["ports"]
    assert rule == {"backendRefs": [{"name": service["metadata"]["name"], "port": port["port"]}]}
    assert service["spec"]["type"] == "ClusterIP"


def test_no_load_balancer_service_anywhere(request):
    for which in ALL_PLANS:
        plan = request.getfixturevalue(which)
        services = [m for m in plan.data["manifests"] if m["kind"] == "Service"]
        assert services and all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in services), which
        assert all("externalIPs" not in s["spec"] for s in services)


def test_health_check_on_healthz(default_plan):
    spec = default_plan.manifest("HealthCheckPolicy", "chat")["spec"]
    assert spec["targetRef"] == {"group": "", "kind": "Service", "name": "chat"}
    assert spec["default"]["config"] == {
        "type": "HTTP",
        # No `port`: the serving port (the chat's container port, through NEGs); see test_gke_admission.py.
        "httpHealthCheck": {"requestPath": "/healthz", "portSpecification": "USE_SERVING_PORT"},
    }


def test_backend_timeout_outlasts_the_chats_request_timeout_and_a_long_stream(default_plan):
    spec = backend_policy(default_plan)
    assert spec["targetRef"] == {"group": "", "kind": "Service", "name": "chat"}
    timeout = spec["default"]["timeoutSec"]
    assert timeout == BACKEND_TIMEOUT_S
    request_timeout = float(chat_env(default_plan)["CHAT_REQUEST_TIMEOUT"])
    assert timeout >= request_timeout + 60
    assert timeout >= 5 * 60  # a five-minute stream arrives whole


def test_cookie_session_affinity_for_every_replica_count(default_plan, scaled_plan):
    for plan in (default_plan, scaled_plan):
        affinity = backend_policy(plan)["default"]["sessionAffinity"]
        assert affinity["type"] == "GENERATED_COOKIE"
        assert affinity["cookieTtlSec"] > 0


def test_iap_on_with_the_google_managed_client_by_default(default_plan):
    assert backend_policy(default_plan)["default"]["iap"] == {"enabled": True}
    assert not default_plan.of_type("kubernetes:core/v1:Secret") or all(
        s["name"] != "iap-oauth-client" for s in default_plan.of_type("kubernetes:core/v1:Secret")
    )


def test_custom_oauth_client(scaled_plan):
    iap = backend_policy(scaled_plan)["default"]["iap"]
    assert iap == {"enabled": True, "clientID": IAP_CLIENT_ID, "oauth2ClientSecret": {"name": "iap-oauth-client"}}
    secret = scaled_plan.one("kubernetes:core/v1:Secret", "iap-oauth-client")["inputs"]
    assert secret["stringData"] == fingerprint({"key": IAP_CLIENT_SECRET})
    assert scaled_plan.depends_on(
        "kubernetes:networking.gke.io/v1:GCPBackendPolicy", "chat", "kubernetes:core/v1:Secret", "iap-oauth-client"
    )
    assert IAP_CLIENT_SECRET not in scaled_plan.raw


def test_access_defaults_to_the_deploying_identity(default_plan):
    (member,) = default_plan.of_type("gcp:iap/webIamMember:WebIamMember")
    condition = member["inputs"].pop("condition")
    assert member["inputs"] == {
        "project": PROJECT,
        "role": "roles/iap.httpsResourceAccessor",
        "member": f"user:{FAKE_DEPLOYER_EMAIL}",
    }
    # Narrowed to this stack's hostname (IAP's hostname condition), which also keeps two stacks' grants apart.
    assert condition["expression"] == 'request.host == "203-0-113-10.nip.io"'
    assert condition["title"].endswith("-only")


def test_deployer_member_kinds():
    assert deployer_member("me@example.com") == "user:me@example.com"
    assert deployer_member("ci@p.iam.gserviceaccount.com") == "serviceAccount:ci@p.iam.gserviceaccount.com"


def test_explicit_chat_users_replace_the_default(scaled_plan):
    members = scaled_plan.of_type("gcp:iap/webIamMember:WebIamMember")
    assert sorted(m["inputs"]["member"] for m in members) == sorted(CHAT_USERS)
    assert {m["inputs"]["role"] for m in members} == {"roles/iap.httpsResourceAccessor"}
    assert FAKE_DEPLOYER_EMAIL not in scaled_plan.raw


def test_chat_trusts_only_iap(default_plan):
    env = chat_env(default_plan)
    assert env["CHAT_AUTH"] == "iap"
    assert env["CHAT_IAP_AUDIENCE"] == f"/projects/{FAKE_PROJECT_NUMBER}/global/backendServices/"
    assert env["CHAT_TRUSTED_PROXY"] == "true"
    assert "CHAT_AUTH_USERS" not in env


def test_password_front_door(password_plan):
    assert backend_policy(password_plan)["default"]["iap"] == {"enabled": False}
    assert not password_plan.of_type("gcp:iap/webIamMember:WebIamMember")
    env = chat_env(password_plan)
    assert env["CHAT_AUTH"] == "password"
    assert env["CHAT_AUTH_USERS"] == {"secretKeyRef": {"name": "chat-auth", "key": "users"}}
    assert "CHAT_IAP_AUDIENCE" not in env
    assert password_plan.manifest("Gateway", "chat")  # still HTTPS through the same front door
    assert password_plan.outputs["url"].startswith("https://")


def test_logins_are_ignored_behind_iap(scaled_plan):
    assert "CHAT_AUTH_USERS" not in chat_env(scaled_plan)
    assert all(s["name"] != "chat-auth" for s in scaled_plan.of_type("kubernetes:core/v1:Secret"))
    assert "with-iap-secret" not in scaled_plan.raw


def test_network_policy_admits_only_google_load_balancers(request):
    for which in ALL_PLANS:
        plan = request.getfixturevalue(which)
        policy = plan.manifest("NetworkPolicy", "chat-from-load-balancer")["spec"]
        chat = plan.manifest("Deployment", "chat")["spec"]
        assert policy["podSelector"]["matchLabels"] == chat["selector"]["matchLabels"]
        assert policy["policyTypes"] == ["Ingress"]
        (rule,) = policy["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": kube.CHAT_PORT}]
        cidrs = [peer["ipBlock"]["cidr"] for peer in rule["from"]]
        assert all(set(peer) == {"ipBlock"} and "except" not in peer["ipBlock"] for peer in rule["from"])
        assert set(cidrs) == {"35.191.0.0/16", "130.211.0.0/22", "2600:2d00:1:b029::/64", "2600:2d00:1:1::/64"}


def test_gemma_policy_unchanged(default_plan):
    policy = default_plan.manifest("NetworkPolicy", "gemma-from-chat")["spec"]
    assert policy["ingress"][0]["from"] == [{"podSelector": {"matchLabels": kube.selector_labels("chat")}}]


def test_front_door_waits_for_its_apis_and_certificate(default_plan):
    p = default_plan
    api = "gcp:projects/service:Service"
    assert p.depends_on("gcp:compute/globalAddress:GlobalAddress", "frontdoor-ip", api, "compute")
    assert p.depends_on("gcp:certificatemanager/certificate:Certificate", "frontdoor-cert", api, "certificatemanager")
    assert p.depends_on("gcp:iap/webIamMember:WebIamMember", "frontdoor-access-deployer", api, "iap")
    entry = ("gcp:certificatemanager/certificateMapEntry:CertificateMapEntry", "frontdoor-certmap-entry")
    assert p.depends_on(GATEWAY, "chat", *entry)
    assert p.depends_on("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "chat", GATEWAY, "chat")
