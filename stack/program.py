"""Wires the boxes of the diagram together; `__main__.py` exports what this returns."""

from __future__ import annotations

import pulumi

from stack.apis import Apis, ApisArgs
from stack.chat import Chat, ChatArgs
from stack.cluster import Cluster, ClusterArgs
from stack.config import StackConfig
from stack.firestore import Firestore, FirestoreArgs
from stack.gemma import Gemma, GemmaArgs
from stack.identity import WorkloadIdentity, WorkloadIdentityArgs
from stack.image import ChatImage, ChatImageArgs


def build_stack(cfg: StackConfig) -> dict[str, pulumi.Output]:
    apis = Apis("apis", ApisArgs(project=cfg.project))
    cluster = Cluster(
        "cluster",
        ClusterArgs(project=cfg.project, region=cfg.region, name=cfg.cluster_name, container_api=apis.get("container")),
    )
    firestore = Firestore(
        "firestore",
        FirestoreArgs(
            project=cfg.project,
            database=cfg.firestore_database,
            location=cfg.firestore_location,
            firestore_api=apis.get("firestore"),
        ),
    )
    identity = WorkloadIdentity("chat-identity", WorkloadIdentityArgs(project=cfg.project, cluster=cluster.cluster))
    image = ChatImage(
        "chat-image",
        ChatImageArgs(
            project=cfg.project, region=cfg.region, registry_api=apis.get("artifactregistry"), prebuilt=cfg.chat_image
        ),
    )
    if cfg.gemma_enabled and cfg.hf_token is not None:
        Gemma(
            "gemma",
            GemmaArgs(
                model=cfg.gemma_model,
                gpus=cfg.gemma_gpus,
                accelerator=cfg.gemma_accelerator,
                image=cfg.vllm_image,
                hf_token=cfg.hf_token,
                provider=cluster.provider,
                namespace=cluster.namespace,
            ),
        )
    chat = Chat(
        "chat",
        ChatArgs(
            project=cfg.project,
            region=cfg.region,
            image=image.ref,
            replicas=cfg.chat_replicas,
            firestore_database=firestore.database.name,
            gemma_model=cfg.gemma_model,
            gemini_model=cfg.gemini_model,
            auth_users=cfg.chat_auth_users,
            provider=cluster.provider,
            namespace=cluster.namespace,
            depends_on=[*identity.members, firestore.initialize, firestore.sessions_by_owner, apis.get("aiplatform")],
        ),
    )
    return {
        "url": chat.url,
        "clusterName": cluster.cluster.name,
        "kubeconfig": cluster.kubeconfig,
        "image": image.ref,
        "firestoreDatabase": firestore.database.name,
    }
