"""The Firestore database holding chat history, its placeholder document and the index the session list needs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

SESSIONS_COLLECTION = "chat_sessions"
# Collections the chat shares between replicas whose documents carry `expires_at` (chatapp/history/shared.py):
# a TTL policy on that field lets Firestore delete them once expired, so they never pile up.
EXPIRING_COLLECTIONS = {"session_bindings": "session-bindings", "sign_in_failures": "sign-in-failures"}


@dataclass(frozen=True)
class FirestoreArgs:
    project: str
    database: str
    location: str
    firestore_api: pulumi.Resource


class Firestore(pulumi.ComponentResource):
    database: gcp.firestore.Database
    initialize: gcp.firestore.Document
    sessions_by_owner: gcp.firestore.Index
    expiring: list[gcp.firestore.Field]

    def __init__(self, name: str, args: FirestoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Firestore", name, {}, opts)
        self.database = gcp.firestore.Database(
            name,
            project=args.project,
            name=args.database,
            location_id=args.location,
            type="FIRESTORE_NATIVE",
            # The provider's default is ABANDON: destroy would leave the database and the next `up` fail with 409.
            deletion_policy="DELETE",
            delete_protection_state="DELETE_PROTECTION_DISABLED",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.firestore_api]),
        )
        # Session listings filter by owner, so this owner-less document never shows up as a conversation.
        self.initialize = gcp.firestore.Document(
            f"{name}-initialize",
            project=args.project,
            database=self.database.name,
            collection=SESSIONS_COLLECTION,
            document_id="initialize",
            fields=json.dumps({"placeholder": {"booleanValue": True}}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The chat lists a user's conversations with `owner == X order by updated_at desc limit N`
        # (chatapp/history/firestore.py); Firestore rejects that query until this composite index exists.
        self.sessions_by_owner = gcp.firestore.Index(
            f"{name}-sessions-by-owner",
            project=args.project,
            database=self.database.name,
            collection=SESSIONS_COLLECTION,
            query_scope="COLLECTION",
            fields=[
                gcp.firestore.IndexFieldArgs(field_path="owner", order="ASCENDING"),
                gcp.firestore.IndexFieldArgs(field_path="updated_at", order="DESCENDING"),
            ],
            # Wait for the build (the default, spelled out): the chat Deployment depends on this index, so its
            # first pods list conversations instead of degrading to an empty list. On an empty collection the
            # build takes a few minutes and overlaps the much longer cluster creation.
            skip_wait=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # TTL deletes a document typically within a day after `expires_at` (Firestore's TTL page), never before;
        # nothing in the chat depends on when (a binding kept longer binds the same owner; failures are judged by
        # their own times), so the delay only costs storage. `index_config={}` turns the field's
        # single-field index off: nothing queries it, and an index on a timestamp slows writes (same page).
        self.expiring = [
            gcp.firestore.Field(
                f"{name}-{short}-ttl",
                project=args.project,
                database=self.database.name,
                collection=collection,
                field="expires_at",
                ttl_config=gcp.firestore.FieldTtlConfigArgs(),
                index_config=gcp.firestore.FieldIndexConfigArgs(),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for collection, short in EXPIRING_COLLECTIONS.items()
        ]
        self.register_outputs({"database": self.database.name})
