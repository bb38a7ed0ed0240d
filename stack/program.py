"""Wires the boxes of the diagram together; `__main__.py` exports what this returns."""

from __future__ import annotations

import pulumi

from stack import kube, names
from stack.apis import Apis, ApisArgs
from stack.chat import NAME as CHAT_NAME
from stack.chat import SERVICE_PORT, Chat, ChatArgs
from stack.cluster import Cluster, ClusterArgs
from stack.config import StackConfig
from stack.firestore import Firestore, FirestoreArgs
from stack.frontdoor import FrontDoor, FrontDoorArgs
from stack.gemma import Gemma, GemmaArgs
from stack.gemma_scaling import GemmaScaling, GemmaScalingArgs
from stack.identity import WorkloadIdentity, WorkloadIdentityArgs
from stack.image import ChatImage, ChatImageArgs
from stack.media import Media, MediaArgs
from stack.mirror import DockerHubMirror, MirrorArgs
from stack.monitoring import Monitoring, MonitoringArgs
from stack.scaling import ChatScaling, ChatScalingArgs
from stack.weights import Weights, WeightsArgs


def build_stack(cfg: StackConfig) -> dict[str, pulumi.Output]:
    apis = Apis("apis", ApisArgs(project=cfg.project))
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            project=cfg.project,
            region=cfg.region,
            name=cfg.cluster_name,
            container_api=apis.get("container"),
            compute_api=apis.get("compute"),
            iam_api=apis.get("iam"),
            resource_manager_api=apis.get("cloudresourcemanager"),
            image_streaming_api=apis.get("containerfilesystem"),
            stack=cfg.stack,
        ),
    )
    node_member = cluster.node_account.email.apply(lambda email: f"serviceAccount:{email}")
    firestore = Firestore(
        "firestore",
        FirestoreArgs(
            project=cfg.project,
            database=cfg.firestore_database,
            location=cfg.firestore_location,
            firestore_api=apis.get("firestore"),
        ),
    )
    chat_account = names.kubernetes_account(CHAT_NAME, cfg.stack)
    identity = WorkloadIdentity(
        "chat-identity",
        WorkloadIdentityArgs(
            project=cfg.project,
            cluster=cluster.cluster,
            resource_manager_api=apis.get("cloudresourcemanager"),
            chat_account=chat_account,
            firestore_database=cfg.firestore_database,
        ),
    )
    media = Media(
        "media",
        MediaArgs(
            project=cfg.project,
            region=cfg.region,
            stack=cfg.stack,
            principal=identity.principal,
            storage_api=apis.get("storage"),
            cluster=cluster.cluster,
        ),
    )
    image = ChatImage(
        "chat-image",
        ChatImageArgs(
            project=cfg.project,
            region=cfg.region,
            registry_api=apis.get("artifactregistry"),
            stack=cfg.stack,
            node_member=node_member,
            prebuilt=cfg.chat_image,
        ),
    )
    checksum_key = cluster.checksum_key
    if cfg.gemma_enabled:
        # The vLLM image from the project's registry (image streaming on wake-up), pinned as the preset pins it.
        mirror = DockerHubMirror(
            "vllm-mirror",
            MirrorArgs(
                project=cfg.project,
                region=cfg.region,
                stack=cfg.stack,
                registry_api=apis.get("artifactregistry"),
                node_member=node_member,
            ),
        )
        vllm_image = mirror.ref(cfg.gemma.image_ref)
        weights = Weights(
            "weights",
            WeightsArgs(
                project=cfg.project,
                region=cfg.region,
                stack=cfg.stack,
                model=cfg.gemma.model,
                image=vllm_image,
                hf_token=cfg.hf_token,
                checksum_key=checksum_key,
                principal_of=identity.principal_of,
                storage_api=apis.get("storage"),
                cluster=cluster.cluster,
                provider=cluster.provider,
                namespace=cluster.namespace,
                pullable=mirror.pullable,
            ),
        )
        gemma = Gemma(
            "gemma",
            GemmaArgs(
                preset=cfg.gemma,
                image=vllm_image,
                spot=cfg.gemma_spot,
                bucket=weights.bucket.name,
                service_account=weights.reader_account,
                readable=weights.readable,
                checksum_key=checksum_key,
                provider=cluster.provider,
                namespace=cluster.namespace,
                autoscaled=cfg.gemma_idle_minutes > 0,
                pullable=mirror.pullable,
            ),
        )
        if cfg.gemma_idle_minutes > 0:
            GemmaScaling(
                "gemma-scaling",
                GemmaScalingArgs(
                    project=cfg.project,
                    stack=cfg.stack,
                    cluster_name=cfg.cluster_name,
                    idle_minutes=cfg.gemma_idle_minutes,
                    deployment=gemma.deployment,
                    cluster=cluster.cluster,
                    project_number=identity.number,
                    provider=cluster.provider,
                    namespace=cluster.namespace,
                ),
            )
    iap = cfg.front_door == "iap"
    # IAP signs for `/projects/NUMBER/global/backendServices/ID`; the id is the Gateway controller's, so the chat
    # checks the prefix (the number is looked up, not configured).
    number = identity.number
    chat = Chat(
        "chat",
        ChatArgs(
            project=cfg.project,
            region=cfg.region,
            image=image.ref,
            replicas=cfg.chat_replicas,
            firestore_database=firestore.database.name,
            gemma_model=cfg.gemma.model,
            gemini_model=cfg.gemini_model,
            gemini_location=cfg.gemini_location,
            auth="iap" if iap else "password",
            auth_users=cfg.chat_auth_users,
            iap_audience=number.apply(lambda n: f"/projects/{n}/global/backendServices/") if iap else None,
            provider=cluster.provider,
            namespace=cluster.namespace,
            depends_on=[
                *identity.members,
                media.member,
                firestore.initialize,
                firestore.sessions_by_owner,
                apis.get("aiplatform"),
            ],
            service_account=chat_account,
            checksum_key=checksum_key,
            media_bucket=media.bucket.name,
            daily_tokens=cfg.chat_daily_tokens,
            gemma_wakes_on_demand=cfg.gemma_enabled and cfg.gemma_idle_minutes > 0,
        ),
    )
    ChatScaling(
        "chat-scaling",
        ChatScalingArgs(
            name=CHAT_NAME,
            min_replicas=cfg.chat_replicas,
            max_replicas=cfg.chat_max_replicas,
            deployment=chat.deployment,
            provider=cluster.provider,
        ),
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            project=cfg.project,
            stack=cfg.stack,
            cluster_name=cfg.cluster_name,
            gemma_enabled=cfg.gemma_enabled,
            alert_email=cfg.alert_email,
            monitoring_api=apis.get("monitoring"),
            cluster=cluster.cluster,
            provider=cluster.provider,
            namespace=cluster.namespace,
        ),
    )
    front = FrontDoor(
        "frontdoor",
        FrontDoorArgs(
            project=cfg.project,
            prefix=cfg.cluster_name,
            iap=iap,
            domain=cfg.domain,
            members=cfg.chat_users,
            iap_client_id=cfg.iap_client_id,
            iap_client_secret=cfg.iap_client_secret,
            service=chat.service.metadata.name,
            service_port=SERVICE_PORT,
            provider=cluster.provider,
            namespace=cluster.namespace,
            apis=[apis.get("compute"), apis.get("certificatemanager"), apis.get("iap")],
        ),
    )
    return {
        "url": front.url,
        "ip": front.ip,
        "clusterName": cluster.cluster.name,
        "kubeconfig": cluster.kubeconfig,
        "image": image.ref,
        "firestoreDatabase": firestore.database.name,
        "dashboardUrl": monitoring.url,
        # Checks a deployed stack from inside the chat pod, with the pod's own identity (chatapp/doctor.py).
        "doctorCommand": pulumi.Output.from_input(doctor_command()),
    }


def doctor_command() -> str:
    return f"kubectl exec -n {kube.NAMESPACE} deploy/{CHAT_NAME} -- python -m chatapp.doctor"
