"""The chat's image bucket: per stack, private, deleted on destroy, object access for the chat alone."""

from stack import media, names
from tests.infra.rendering import PROJECT, REGION
from tests.infra.test_chat_contract import pod_environment
from tests.infra.test_real_project import principal

MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"


def test_a_private_per_stack_bucket_that_destroy_deletes(default_plan):
    bucket = default_plan.one("gcp:storage/bucket:Bucket", "media")["inputs"]
    assert bucket["name"] == names.media_bucket(PROJECT, "dev") == f"{PROJECT}-media-dev"
    assert bucket["location"] == REGION
    assert bucket["forceDestroy"] is True
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["softDeletePolicy"] == {"retentionDurationSeconds": 0}
    assert names.media_bucket(PROJECT, "prod") != names.media_bucket(PROJECT, "dev")


def test_the_chat_alone_gets_object_access_on_that_bucket_only(default_plan):
    p = default_plan
    on_media = [m["inputs"] for m in p.of_type(MEMBER) if m["inputs"]["bucket"] == f"{PROJECT}-media-dev"]
    assert [(m["role"], m["member"]) for m in on_media] == [(media.OBJECT_ROLE, principal("chat-dev"))]
    chat_elsewhere = [m for m in p.of_type(MEMBER) if m["inputs"]["member"] == principal("chat-dev")]
    assert len(chat_elsewhere) == 1  # not on the weights bucket
    project_roles = [m["inputs"] for m in p.of_type("gcp:projects/iAMMember:IAMMember")]
    assert not any("storage" in r["role"] for r in project_roles)
    assert p.depends_on(MEMBER, "media-chat", "gcp:container/cluster:Cluster", "cluster")


def test_the_chat_is_told_the_bucket_and_waits_for_its_access(default_plan, gemma_off_plan):
    for p in (default_plan, gemma_off_plan):
        assert pod_environment(p)["CHAT_MEDIA_BUCKET"] == f"{PROJECT}-media-dev"
    assert default_plan.depends_on("kubernetes:apps/v1:Deployment", "chat", MEMBER, "media-chat")


def test_vllm_takes_as_many_images_per_prompt_as_the_chat_sends(default_plan):
    from chatapp.conversation import PROMPT_IMAGES

    (container,) = default_plan.manifest("Deployment", "gemma")["spec"]["template"]["spec"]["containers"]
    assert f'--limit-mm-per-prompt={{"image": {PROMPT_IMAGES}}}' in container["args"]
