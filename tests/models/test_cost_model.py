"""The cost row's model (bench.cost) and the stand-in autoscaler's reading of the chat's counter: the rule they
replay is KEDA's as the stack renders it, so a wrong hold time or a missed wake-up would misstate the GPU hours."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from bench.cost import replay, week_of_turns
from harness.autoscaler import wanted_total
from stack.gemma_scaling import COOLDOWN_S, POLLING_S

HOLD_S = 1800 + COOLDOWN_S + POLLING_S  # a 30-minute idle window, then KEDA's cooldown and one poll


def test_turns_within_the_idle_window_keep_one_wake_up():
    week = replay([0.0, 600.0, 1200.0], idle_s=1800, wake_s=720)
    assert (week.wake_ups, week.pod_hours) == (1, (1200 + HOLD_S) / 3600)
    assert week.answered_by_gemini == 2  # the turns at 0 and 10 min came while it woke (12 min)


def test_a_turn_after_the_server_went_down_wakes_it_again():
    gap = HOLD_S + 1
    week = replay([0.0, gap], idle_s=1800, wake_s=60)
    assert (week.wake_ups, week.pod_hours) == (2, 2 * HOLD_S / 3600)
    assert week.answered_by_gemini == 2


def test_the_week_is_office_hours_on_weekdays_and_the_same_every_run():
    turns = week_of_turns()
    assert turns == week_of_turns() and len(turns) > 100
    assert all(t % 86400 >= 9 * 3600 and t % 86400 < 18 * 3600 and t < 5 * 86400 for t in turns)


def test_the_counter_is_read_as_keda_reads_it():
    registry = CollectorRegistry()
    counter = Counter("chat_self_hosted_wanted", "Turns that wanted the self-hosted model.", registry=registry)
    counter.inc(3)
    page = generate_latest(registry).decode()  # what the chat's /metrics serves, `_created` sample included
    assert wanted_total(page) == 3.0
    assert wanted_total("# TYPE other counter\nother_total 1.0\n") is None
