"""The Firestore database holding chat history, and its placeholder document."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

SESSIONS_COLLECTION = "chat_sessions"


@dataclass(frozen=True)
class FirestoreArgs:
    project: str
    database: str
    location: str
    firestore_api: pulumi.Resource


class Firestore(pulumi.ComponentResource):
    database: gcp.firestore.Database
    initialize: gcp.firestore.Document

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
        self.register_outputs({"database": self.database.name})
