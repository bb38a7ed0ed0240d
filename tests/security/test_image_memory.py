"""Issue 15 row 6 through a running chat: concurrent image turns (each uploads 5 images of 10 MB, then sends them
to the self-hosted model, a fake in its own process) hold each turn's images about once, so 8 at once stay well
under the pod's 2 GiB. The chat process's resident memory is read from /proc (bench.images measures the same)."""

from __future__ import annotations

from bench.images import image_turn_memory

CLIENTS = 3
# A turn's 50 MB of images, held once, with room for the rest of the turn. Whole-turn copies (the base64 text,
# the JSON text, the encoded body) were ~250 MiB a turn: 2,141 MiB at the peak for 8 turns.
PER_TURN_MIB = 100


def test_concurrent_image_turns_hold_each_turns_images_about_once():
    memory = image_turn_memory(clients=CLIENTS, images=5, size=10 * 1024 * 1024, rounds=2)
    growth = memory["peak_mib"] - memory["before_mib"]
    assert growth < CLIENTS * PER_TURN_MIB, f"{CLIENTS} image turns at once took {growth:.0f} MiB: {memory}"
