"""`make mutations`: systematic mutation testing with mutmut over the modules that carry security and data promises.

mutmut generates every mutant it knows for a module (comparisons flipped, constants and strings changed, calls
dropped, `and`/`or` swapped…), runs the tests that reach the mutated function and counts the mutant "killed" when a
test fails. A module's score is killed / (all mutants - the equivalent ones listed below): what the tests would
let through if someone made that one-line change.

Each module is mapped to its fast in-process tests: mutmut switches mutants on inside the test process, so a
test that only reaches the code through a chat subprocess neither kills nor covers anything here. Each module
runs in its own scratch copy of the working tree (`.cache/mutmut/<module>/`, kept afterwards for
`mutmut show NAME` / `mutmut browse` there), so one module's test selection never mixes with another's.

    python -m bench.mutation_score                 # every module, then a table; exit 1 if one is under the goal
    python -m bench.mutation_score chatapp/iap.py  # one or a few
    python -m bench.mutation_score --list          # modules and their tests
    python -m bench.mutation_score --report        # the last run's results again (e.g. after listing equivalents)
    python -m bench.mutation_score --sample 120 chatapp/web.py  # a seeded sample of its mutants (slow modules)

A mutant that is killed only because a test ran into its timeout counts as surviving: a test must fail on an
assertion, not a hang. The hand-written cases of `bench.mutations` stay as regression cases
(`make mutations-listed`): they cover the retry queue, the models and the chat service, which are outside this
list.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.scratch import ROOT, copy_tree

WORK = ROOT / ".cache" / "mutmut"
GOAL = 0.90
TEST_TIMEOUT_S = 30  # per test inside a mutant run; a test that hangs this long "killed" nothing (see above)
TIMEOUT_MARK = "mutmut-timeouts.txt"
SAMPLE_FILE = "mutmut-sample.txt"  # the names a sampled run tried (--sample)


@dataclass(frozen=True)
class Module:
    path: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -m/-k expressions
    forkserver: bool = False  # gRPC (the Firestore client) cannot be forked once it has run
    emulator: bool = False  # one Firestore emulator, started here, for every mutant's tests
    # Run a seeded sample of this many mutants by default: every one of them would take hours on 2 cores.
    sample: int | None = None


FAST = "not integration"
SECURITY = "tests/security"
HISTORY = "tests/history/test_contract.py", "tests/history/test_manage.py", "tests/history/test_usage.py"
FRONT_DOOR = tuple(f"{SECURITY}/test_{name}_promises.py" for name in ("web", "identity", "upload"))
MODELS = "tests/models"
GEMINI_MODULES = (("gemini", 60), ("gemini_client", 40), ("gemini_request", 40), ("gemini_errors", 40))
# Left out: tests that bound a duration from above (under the load of a mutation run they fail on a clean tree,
# and mutmut then collects nothing); the promise tests assert the same sentences without a stopwatch.
GEMINI_TESTS = (
    *(f"{MODELS}/test_{name}.py" for name in ("gemini", "gemini_options", "gemini_promises", "usage")),
    *("-m", FAST, "-k", "not never_answering_times_out and not persists_is_reported"),
)
OPENAI_MODULES = (
    ("openai_compat", 60),
    ("openai_compat_request", None),
    ("openai_compat_stream", 60),
    ("openai_compat_errors", 40),
)
OPENAI_TESTS = (
    *(f"{MODELS}/test_{name}.py" for name in ("openai_compat", "openai_thinking", "openai_compat_promises", "usage")),
    f"{MODELS}/test_images_wire.py",
    *("-m", FAST, "-k", "not 32_concurrent and not within_the_retry_budget and not never_answers"),
)
MODULES = (
    Module("chatapp/iap.py", ("tests/security/test_iap_verifier.py",)),
    # Its own tests only: they bound every call, so a mutant that loops fails an assertion instead of hanging.
    Module("chatapp/safe_markdown.py", ("tests/chat/test_safe_markdown.py",)),
    Module("chatapp/export.py", ("tests/chat/test_export.py", "tests/chat/test_manage.py")),
    Module(
        "chatapp/models/auto.py",
        (
            "tests/models/test_auto_scripted.py",
            "tests/models/test_auto.py",
            "tests/models/test_auto_promises.py",
            "tests/models/test_waking.py",  # Auto following the wake state
            "tests/models/test_usage.py",
            "-m",
            FAST,
        ),
    ),
    Module(
        "chatapp/conversations.py",
        (
            "tests/chat/test_conversations.py",
            "tests/chat/test_conversations_edges.py",
            "tests/chat/test_manage.py",
            "tests/chat/test_conversation_images.py",
        ),
    ),
    # `-m`: the Firestore-only tests without "firestore" in their name (test_usage.py's) would start an emulator.
    Module(
        "chatapp/history/sqlite.py",
        (
            *HISTORY,
            "tests/history/test_sqlite.py",
            "tests/history/test_sqlite_promises.py",
            "-k",
            "not firestore",
            "-m",
            FAST,
        ),
    ),
    # Not the test that stops and restarts an emulator of its own: two JVM starts take longer than TEST_TIMEOUT_S
    # on 2 cores (10 s set-up + 20 s, measured 2026-12-06), so it timed out in mutmut's first pass, which runs
    # with `-x` in a forked child whose output mutmut does not show: "failed to collect stats", exit 1. Nor the
    # two that time 2,000 and 500 saved turns (their promise is speed; the 2,000 took over 30 s on the loaded
    # machine, 10:10 UTC 2026-12-06): test_firestore_promises.py makes each call fail and watches its deadline.
    Module(
        "chatapp/history/firestore.py",
        (
            *HISTORY,
            "tests/history/test_firestore.py",
            "tests/history/test_firestore_images.py",
            "tests/history/test_firestore_promises.py",
            "-k",
            "not sqlite and not stopping_the_emulator and not 2000_turn and not resume_of_1000",
        ),
        forkserver=True,
        emulator=True,
        sample=85,  # of 774; random.sample picks the same first names for any size up to 85 (its set method)
    ),
    Module(
        "chatapp/usage.py",
        (
            "tests/chat/test_usage.py",
            "tests/chat/test_settings_usage.py",
            "tests/chat/test_usage_promises.py",
            "tests/history/test_shared.py",  # reservations kept in the store (on SQLite here)
            "-k",
            "not firestore",
        ),
    ),
    Module("chatapp/images.py", ("tests/media", "tests/chat/test_conversation_images.py", "-m", FAST)),
    # The front door, driven in this process through the ASGI app (tests/security/inprocess.py): tests that
    # reach it only through a chat subprocess are invisible to mutmut, whose trampolines switch mutants on
    # inside the test process.
    Module("chatapp/identity.py", (f"{SECURITY}/test_identity_promises.py",)),
    Module(
        "chatapp/uploads.py",
        (
            f"{SECURITY}/test_upload_promises.py",
            f"{SECURITY}/test_web_promises.py::test_an_upload_id_is_its_first_callers",
            f"{SECURITY}/test_upload_limits.py::test_the_registry_holds_each_caller_to_its_bytes_frees_them_when_sent"
            "_and_expires_the_rest",
            # The handles' resolve (their other tests there reach it only through a chat subprocess).
            f"{SECURITY}/test_upload_limits.py::test_the_registry_answers_handles_maps_only_the_callers_own_back_and"
            "_forgets_them_once_sent",
            f"{SECURITY}/test_upload_limits.py::test_a_url_sent_as_a_files_path_never_reaches_gradio_which_would_fetch_it",
            # 100 MB through the app for each mutant: web.py's run keeps it; the registry's tests bound the room.
            "-k",
            "not keeps_at_most_its_bytes",
        ),
    ),
    Module(
        "chatapp/web.py",
        FRONT_DOOR,
        sample=100,  # of 850 mutants, each running the app's HTTP tests
    ),
    # The Guard's layers (chatapp.web composes them), judged by the same HTTP tests.
    *(
        Module(f"chatapp/{layer}.py", FRONT_DOOR, sample=60)
        for layer in ("session_binding", "upload_gate", "login_gate")
    ),
    # Its functions run on every answer, so the front door's tests reach it; test_header_promises drives the
    # cookie cases Gradio never produces (no SameSite, Strict).
    Module("chatapp/headers.py", (*FRONT_DOOR, f"{SECURITY}/test_header_promises.py")),
    # The model clients, through the real SDK / HTTP client against the in-process fakes (harness/fakes). Samples:
    # a mutant of the reply's stream runs ~40 HTTP tests (~12 s each on the loaded 2 cores, measured 2026-12-06).
    *(Module(f"chatapp/models/{name}.py", GEMINI_TESTS, sample=n) for name, n in GEMINI_MODULES),
    *(Module(f"chatapp/models/{name}.py", OPENAI_TESTS, sample=n) for name, n in OPENAI_MODULES),
    # The Pulumi component rendered in this process under mocks (the plan tests render in a subprocess). Pulumi's
    # runtime runs gRPC too: a child forked after the first render spun until its CPU limit (every mutant a
    # "timeout", measured 2026-12-06).
    Module("stack/scaling.py", ("tests/infra/test_scaling_promises.py",), forkserver=True),
)

# Mutants no test can tell from the original, by name (`mutmut show NAME` in the module's scratch copy), each
# with why. They are left out of the score; the README lists them too.
PADDING = "urlsafe_b64decode ignores padding beyond what is needed; only too little fails, and this adds enough"
DOWN_REASON = "the initial _down_reason is never read: only a failure opens the window, and it sets the reason"
ONE_LINE = "_inline gets one line: no line break can come before the run that closes a span (kept as a guard)"
SNIFF_READ = "sniff reads at most 12 bytes: reading 17, or the whole file, gives the same verdict"
ZERO_ENTRY = "keeping an entry of 0 instead of removing it: get(owner, 0) reads both the same"
DEFAULT_HELD = "only `.owners` of the default _Held is read: its size and time are never used"
NO_RECEIVE = "a refusal (PlainTextResponse) never reads the request: receive=None is never called"
HEADER_CASE = "Starlette looks header names up case-insensitively (it lower-cases them): the same header"
NO_HOST = "only a request with an Origin and no Host (HTTP/1.0) differs, and it is refused either way"
READ_CAP = "the file's size was checked against the limit just before: reading it all, or 2 bytes more, is the same"
HOLD_ID = "a hold id only has to be unique per owner and day and made of letters and digits (a Firestore field)"
SQL_CASE = "SQLite's keywords and names are case-insensitive (a line the script cannot tell is SQL)"
QUERY_TABLE = "the query tables are CREATE ... IF NOT EXISTS: making them again each search finds the same words"
FALSE_FLAG = "_closed = None: it is read only as `if self._closed`, where None is False"
NO_NULL_TITLE = "the title is never NULL (NOT NULL under COALESCE); a NULL owner already differs from any owner"
TOKENS_TOGETHER = "save_turn writes tokens_in and tokens_out together (one Usage, or both NULL): never one alone"
ZERO_ROW = "a reply that cost 0 tokens adds a 0-token row: tokens_used reads 0 either way"
ENSURE_ASCII = (
    "the record is read back only by json.loads: escaped or raw non-ASCII gives the same text (a lone surrogate "
    "would differ, and chatapp/inputs.py replaces those before any store sees a message)"
)
HANDLED = "add answers a handle for every path an owner holds, kept in _paths until dropped: a default never used"
BOTH_SET = "_shared and _calls are set together in __init__: one is None exactly when the other is"
PROJECT_MISREAD = (
    "GOOGLE_CLOUD_PROJECT unread there: the status check makes the client a moment earlier, and with a project "
    "make_client passes it and the SDK reads no credentials before sending: the same answer"
)
EVENTS = "events is only compared with 0: after a data line it is non-zero whether counted up, set to 1 or down"
EQUIVALENT: dict[str, str] = {
    "chatapp.iap.x__b64url__mutmut_6": PADDING,
    "chatapp.iap.x__b64url__mutmut_7": PADDING,
    "chatapp.iap.x__jwk_to_pem__mutmut_28": 'int.from_bytes without byteorder is "big" (Python 3.11+)',
    "chatapp.iap.x__jwk_to_pem__mutmut_38": 'int.from_bytes without byteorder is "big" (Python 3.11+)',
    "chatapp.iap.xǁIapVerifierǁ__init____mutmut_5": "_keys = None is never read: the first call always fetches",
    "chatapp.iap.xǁIapVerifierǁ__init____mutmut_9": 'float("-INF") is float("-inf")',
    "chatapp.safe_markdown.x__inline__mutmut_2": "line[None:i] is line[0:i]",
    "chatapp.safe_markdown.x__span_end__mutmut_7": ONE_LINE,
    "chatapp.safe_markdown.x__span_end__mutmut_11": ONE_LINE,
    "chatapp.safe_markdown.x__span_end__mutmut_13": ONE_LINE,
    "chatapp.safe_markdown.x_safe_markdown__mutmut_8": "parses text without fences too: slower, same output",
    "chatapp.export.x__closed_fences__mutmut_9": "a fence is a run of one character: fence[1] is fence[0]",
    "chatapp.export.x__closed_fences__mutmut_11": "a fence is a run of one character: fence[1] is fence[0]",
    "chatapp.export.x_to_json__mutmut_31": "json.dumps treats ensure_ascii=None as False",
    "chatapp.models.auto.xǁAutoModelǁ__init____mutmut_11": DOWN_REASON,
    "chatapp.models.auto.xǁAutoModelǁ__init____mutmut_12": DOWN_REASON,
    "chatapp.models.auto.xǁAutoModelǁ_failed__mutmut_4": "skip_s 0 opens a window [now, now): nothing is skipped",
    "chatapp.models.auto.xǁAutoModelǁstream__mutmut_31": "received = None: `None or bool(text)` is bool(text)",
    "chatapp.conversations.xǁConversationsǁexport__mutmut_26": "len / 2 is a float equal to len // 2 (even length)",
    "chatapp.conversations.xǁConversationsǁsearch__mutmut_16": "both stores' default search limit is SEARCH_LIMIT (20)",
    "chatapp.conversations.xǁConversationsǁundo__mutmut_24": "last is never None there: a turn exists (checked above)",
    "chatapp.history.sqlite.xǁSqliteStoreǁ__init____mutmut_20": FALSE_FLAG,
    **{f"chatapp.history.sqlite.xǁSqliteStoreǁ_index_words__mutmut_{n}": QUERY_TABLE for n in (2, 4, 8, 9, 12, 13)},
    "chatapp.history.sqlite.xǁSqliteStoreǁdescribe_session__mutmut_20": NO_NULL_TITLE,
    "chatapp.history.sqlite.xǁSqliteStoreǁload_messages__mutmut_9": SQL_CASE,
    "chatapp.history.sqlite.xǁSqliteStoreǁload_messages__mutmut_29": SQL_CASE,
    "chatapp.history.sqlite.xǁSqliteStoreǁload_messages__mutmut_54": TOKENS_TOGETHER,
    "chatapp.history.sqlite.xǁSqliteStoreǁsave_turn__mutmut_35": SQL_CASE,
    "chatapp.history.sqlite.xǁSqliteStoreǁsave_turn__mutmut_37": SQL_CASE,
    "chatapp.history.sqlite.xǁSqliteStoreǁsave_turn__mutmut_80": ZERO_ROW,
    **{f"chatapp.history.sqlite.xǁSqliteStoreǁsave_unanswered__mutmut_{n}": ENSURE_ASCII for n in (9, 11, 20)},
    "chatapp.uploads.x_all_images__mutmut_12": SNIFF_READ,
    "chatapp.uploads.x_all_images__mutmut_13": SNIFF_READ,
    "chatapp.uploads.xǁUploadRegistryǁ_drop_oldest__mutmut_2": "popitem(last=None) is popitem(last=False)",
    "chatapp.uploads.xǁUploadRegistryǁ_drop_oldest__mutmut_6": HANDLED,
    "chatapp.uploads.xǁUploadRegistryǁconsume__mutmut_9": HANDLED,
    "chatapp.uploads.xǁUploadRegistryǁconsume__mutmut_11": HANDLED,
    "chatapp.uploads.xǁUploadRegistryǁconsume__mutmut_13": HANDLED,
    "chatapp.uploads.xǁUploadRegistryǁconsume__mutmut_14": HANDLED,
    "chatapp.uploads.xǁUploadRegistryǁ_release__mutmut_8": ZERO_ENTRY,
    "chatapp.uploads.xǁUploadRegistryǁadd__mutmut_14": DEFAULT_HELD,
    "chatapp.uploads.xǁUploadRegistryǁadd__mutmut_15": DEFAULT_HELD,
    "chatapp.uploads.xǁUploadRegistryǁadd__mutmut_19": DEFAULT_HELD,
    "chatapp.uploads.xǁUploadRegistryǁadd__mutmut_20": DEFAULT_HELD,
    "chatapp.uploads.xǁUploadRegistryǁadd__mutmut_40": "a new entry's `since` is set to now on the next line",
    "chatapp.usage.xǁDailyUsageǁ_release__mutmut_21": ZERO_ENTRY,
    "chatapp.usage.xǁDailyUsageǁ__init____mutmut_5": "an idle pool without a shared store: never submitted to, "
    "and a ThreadPoolExecutor starts no thread before its first submit",
    "chatapp.usage.xǁDailyUsageǁ_reserve_in_store__mutmut_1": BOTH_SET,
    "chatapp.usage.xǁDailyUsageǁ_reserve_in_store__mutmut_14": HOLD_ID,
    "chatapp.usage.xǁDailyUsageǁ_reserve_in_store__mutmut_15": HOLD_ID,
    "chatapp.usage.xǁDailyUsageǁ_reserve_in_store__mutmut_16": HOLD_ID,
    "chatapp.usage.xǁDailyUsageǁ_reserve_in_store__mutmut_17": HOLD_ID,
    "chatapp.session_binding.xǁSessionBindingǁcall__mutmut_112": NO_RECEIVE,
    **{f"chatapp.upload_gate.xǁUploadGateǁ__call____mutmut_{n}": NO_RECEIVE for n in (19, 42, 57, 74, 151, 165, 181)},
    **{f"chatapp.upload_gate.xǁUploadGateǁ__call____mutmut_{n}": HEADER_CASE for n in (38, 39, 53)},
    "chatapp.upload_gate.xǁUploadGateǁ__call____mutmut_54": "a missing Content-Length defaults to a string that is "
    "not digits: any such string (XXXX) is refused the same (411)",
    **{
        f"chatapp.upload_gate.xǁUploadGateǁ__call____mutmut_{n}": "each upload request is written into a folder of its "
        "own (chatapp.uploads.own_folder), so no path of a new batch is already held: `fresh` is every path either way"
        for n in (133, 134)
    },
    "chatapp.upload_gate.xǁUploadGateǁ__call____mutmut_128": "an answer that is not JSON becomes None or '': neither "
    "is a list, so both are refused the same (502)",
    **{f"chatapp.headers.x_harden_cookies__mutmut_{n}": HEADER_CASE for n in (4, 7, 46)},
    **{f"chatapp.headers.x_hardened__mutmut_{n}": HEADER_CASE for n in (18, 24, 28, 40)},
    "chatapp.web.xǁGuardǁ__init____mutmut_1": "create_app always passes trusted_proxy: the default is never used",
    "chatapp.web.xǁGuardǁis_cross_site_write__mutmut_29": f"{NO_HOST} (403, or a 500 from None.lower())",
    "chatapp.web.xǁGuardǁis_cross_site_write__mutmut_32": f"{NO_HOST} (its Origin is not the host XXXX either)",
    **{
        f"chatapp.web.xǁGuardǁ{name}": HEADER_CASE
        for name in (
            "_check__mutmut_18",
            "is_cross_site_write__mutmut_11",
            "is_cross_site_write__mutmut_31",
            "is_https__mutmut_15",
        )
    },
    "chatapp.history.firestore.xǁFirestoreStoreǁsearch_sessions__mutmut_62": "a message without content read as "
    'None instead of "": None is skipped as not text, and no word matches an empty text either',
    "chatapp.history.firestore.xǁFirestoreStoreǁtokens_used__mutmut_21": "reading a counter that does not exist "
    "as if it did: its snapshot's to_dict() is None, so `or {}` gives the same empty dict",
    "chatapp.images.x_read_images__mutmut_25": READ_CAP,
    "chatapp.images.x_read_images__mutmut_27": READ_CAP,
    "chatapp.identity.x_caller__mutmut_3": "getattr(None, 'username', None) is None: the check only saves a call",
    "chatapp.models.gemini.xǁGeminiModelǁ_read__mutmut_20": "rstrip takes a set of characters: 'XX.XX' also strips "
    "a trailing capital X, which a Vertex sentence does not end with",
    "chatapp.models.gemini.xǁGeminiModelǁ_read__mutmut_37": "[:2] of the candidates: the request never sets "
    "candidateCount, so Gemini sends one",
    "chatapp.models.openai_compat_stream.x_read_reply__mutmut_1": "received = None: it is only read for its "
    "truth (False and None alike), and set to True with the first text",
    "chatapp.models.openai_compat_stream.x_read_reply__mutmut_10": EVENTS,
    "chatapp.models.openai_compat_stream.x_read_reply__mutmut_11": EVENTS,
    "chatapp.models.openai_compat_stream.x_read_reply__mutmut_79": "the request never sets n: every choice a "
    "server streams has index 0, so the key's spelling is never tested",
    "chatapp.models.gemini_errors.x_client_error__mutmut_4": "Google's error bodies always carry a status, and "
    "google-genai gives a body that is not JSON the HTTP reason phrase as its status",
    "chatapp.models.gemini_request.x_gemini_options__mutmut_18": "top_p left to ModelOptions' default: "
    "defaults.TOP_P is 0.95, Google's own default too",
    "chatapp.models.gemini_client.x_needs_project_lookup__mutmut_5": PROJECT_MISREAD,
    "chatapp.models.gemini_client.x_needs_project_lookup__mutmut_6": PROJECT_MISREAD,
    "stack.scaling.xǁChatScalingǁ__init____mutmut_3": "pulumi's Resource.__init__ turns props=None into {}",
    "stack.scaling.xǁChatScalingǁ__init____mutmut_100": "pulumi's register_resource_outputs sends `outputs or {}`",
}


def workdir(module: Module) -> Path:
    return WORK / module.path.removesuffix(".py").replace("/", ".")


def scratch_copy(module: Module) -> Path:
    """A fresh copy of the working tree as it is (uncommitted changes included), set up for this module."""
    work = workdir(module)
    shutil.rmtree(work, ignore_errors=True)
    listed = copy_tree(work)
    package = Path(module.path).parts[0]  # chatapp, or stack for the Pulumi program's modules
    others = sorted({Path(name).parts[0] for name in listed} - {package, "tests"})
    config = {
        "source_paths": [f"{package}/"],
        "only_mutate": [module.path],
        "also_copy": [f"{name}/" if (work / name).is_dir() else name for name in others],
        "pytest_add_cli_args_test_selection": list(module.tests),
        "pytest_add_cli_args": ["-q", "-p", "bench.mutmut_timeouts", "-o", f"timeout={TEST_TIMEOUT_S}"],
        "process_isolation": "forkserver" if module.forkserver else "fork",
    }
    with (work / "pyproject.toml").open("a") as toml:
        toml.write("\n[tool.mutmut]\n")
        for key, value in config.items():
            toml.write(f"{key} = {json.dumps(value)}\n")
    return work


@dataclass
class Score:
    module: str
    total: int
    killed: int
    equivalent: list[str]
    survived: list[str]  # every other mutant: survived, only timed out, not covered by any selected test
    statuses: dict[str, str]
    seconds: float
    changes: dict[str, list[str]]  # of every mutant not killed
    generated: int  # mutants mutmut made; more than `total` in a sampled run

    @property
    def score(self) -> float:
        counted = self.total - len(self.equivalent)
        return self.killed / counted if counted else 1.0


def run(module: Module, budget_s: float, children: int, sample: int | None = None) -> Score:
    if not module.emulator:
        return run_in(module, budget_s, children, sample, {})
    from harness.firestore_emulator import FirestoreEmulator, find_emulator_jar
    from tests.fixtures.firestore_emulator import SHARED_PORT

    jar = find_emulator_jar()
    if jar is None:
        raise SystemExit(f"{module.path} needs the Firestore emulator (see harness/firestore_emulator.py)")
    with FirestoreEmulator(jar) as emulator:
        emulator.warm_up()
        return run_in(module, budget_s, children, sample, {SHARED_PORT: str(emulator.port)})


def run_in(module: Module, budget_s: float, children: int, sample: int | None, env: dict[str, str]) -> Score:
    work = scratch_copy(module)
    started = time.monotonic()
    output = ""
    names: list[str] = []
    if sample is not None:
        # mutmut makes every mutant and runs the tests once (to learn which test reaches which function), then
        # finds no mutant by this name; a seeded sample of the names it made is then run.
        output = mutmut(work, ["no-such-mutant"], children, budget_s, env)
        every = sorted(json.loads(meta_file(work, module).read_text())["exit_code_by_key"])
        names = sorted(random.Random(module.path).sample(every, min(sample, len(every))))
        (work / SAMPLE_FILE).write_text("\n".join(names) + "\n")
    output += mutmut(work, names, children, budget_s - (time.monotonic() - started), env)
    (work / "mutmut-run.log").write_text(output)
    seconds = time.monotonic() - started
    return tally(module, work, seconds, output)


def mutmut(work: Path, names: list[str], children: int, budget_s: float, env: dict[str, str]) -> str:
    env = {**os.environ, **env, "CI": "true"}  # a missing component fails instead of skipping
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *names]
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=max(budget_s, 1.0))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # mutmut and the test processes it forked
        output, _ = process.communicate()
        output += f"\n(stopped after the {budget_s:g} s budget; unrun mutants count as survivors)\n"
    return output


def meta_file(work: Path, module: Module) -> Path:
    return work / "mutants" / f"{module.path}.meta"


def tally(module: Module, work: Path, seconds: float, output: str) -> Score:
    from mutmut.stats import status_by_exit_code

    meta = meta_file(work, module)
    if not meta.exists():
        sys.stdout.write(output[-3000:])
        raise SystemExit(f"{module.path}: mutmut produced no results (its output above, all of it in {work})")
    if "failed to collect stats" in output:
        # mutmut's first pass (which maps tests to functions, with -x) failed: every mutant would read "not checked".
        sys.stdout.write(output[-3000:])
        raise SystemExit(f"{module.path}: a selected test fails on the unmutated tree (above); no mutant was checked")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    generated = len(codes)
    if (work / SAMPLE_FILE).exists():
        codes = {name: codes[name] for name in (work / SAMPLE_FILE).read_text().split()}
    marks = work / "mutants" / TIMEOUT_MARK
    timeouts = set(marks.read_text().split()) if marks.exists() else set()
    statuses = {}
    for name, code in codes.items():
        status = status_by_exit_code[code]
        statuses[name] = "killed only by a test timeout" if status == "killed" and name in timeouts else status
    killed = [n for n, s in statuses.items() if s in ("killed", "caught by type check")]
    changes = diffs(work, module, [n for n in statuses if n not in killed])
    equivalent = [n for n in changes if n in EQUIVALENT or sql_case_only(changes[n])]
    survived = sorted(n for n in changes if n not in equivalent)
    return Score(module.path, len(codes), len(killed), equivalent, survived, statuses, seconds, changes, generated)


def diffs(work: Path, module: Module, names: list[str]) -> dict[str, list[str]]:
    """Each mutant's changed lines ("-" original, "+" mutant), read with mutmut's own code in its directory."""
    import mutmut.configuration
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    mutmut.configuration.reset_config()  # its configuration is per directory
    with contextlib.chdir(work):
        texts = {name: get_diff_for_mutant(name, path=module.path) for name in names}
    mutmut.configuration.reset_config()
    return {
        name: [line for line in text.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++")]
        for name, text in texts.items()
    }


_SQL = re.compile(r"\b(select|insert|update|delete|from|where|values|on conflict|order by|join|pragma)\b", re.I)


def sql_case_only(lines: list[str]) -> bool:
    """A mutant that only upper- or lower-cases SQL text: SQLite's keywords and names are case-insensitive."""
    removed = [line[1:] for line in lines if line.startswith("-")]
    added = [line[1:] for line in lines if line.startswith("+")]
    return (
        bool(removed)
        and len(removed) == len(added)
        and all(a != b and a.lower() == b.lower() and _SQL.search(a) for a, b in zip(removed, added, strict=True))
    )


def show(score: Score) -> None:
    for name in score.survived:
        print(f"  {score.statuses[name]:>10}  {name}")
        for line in score.changes[name]:
            print(f"              {line.strip()[:150]}")


def check_equivalents() -> int:
    """Re-read every EQUIVALENT entry against the mutants mutmut makes of today's code (no test runs): a name
    that no longer exists fails; each existing one is printed with its diff and reason, to be judged again."""
    import mutmut.configuration

    stale = []
    for module in MODULES:
        dotted = module.path.removesuffix(".py").replace("/", ".")
        listed = sorted(n for n in EQUIVALENT if re.match(rf"{re.escape(dotted)}\.x(_|ǁ)", n))
        if not listed:
            continue
        work = scratch_copy(module)
        mutmut.configuration.reset_config()
        with contextlib.chdir(work):
            from mutmut.__main__ import create_mutants_for_file  # reads the configuration of its directory

            (work / "mutants" / module.path).parent.mkdir(parents=True, exist_ok=True)
            create_mutants_for_file(Path(module.path), Path("mutants") / module.path)
        made = json.loads(meta_file(work, module).read_text())["exit_code_by_key"]
        missing = [n for n in listed if n not in made]
        stale += missing
        for name, lines in diffs(work, module, [n for n in listed if n in made]).items():
            print(f"{name}: {EQUIVALENT[name]}")
            for line in lines:
                print(f"    {line.strip()[:150]}")
        for name in missing:
            print(f"{name}: NO SUCH MUTANT any more ({EQUIVALENT[name]})")
    return 1 if stale else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: all)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument(
        "--budget",
        type=float,
        default=3600.0,
        # A guard against a hung run, not a time limit: on 2 busy cores web.py's sample, SQLite and all of
        # upload_gate took 22-37 min (README, "Mutation testing"); unrun mutants would count as survivors.
        help="seconds per module before unrun mutants count as survivors (default 3600)",
    )
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--check-equivalents", action="store_true", help="re-read the EQUIVALENT list, run nothing")
    parser.add_argument("--sample", type=int, help="a seeded sample of N mutants a module (0: all; default: its own)")
    parser.add_argument("--report", action="store_true", help="score the last run again, without running mutmut")
    args = parser.parse_args()
    chosen = [m for m in MODULES if not args.modules or m.path in args.modules]
    unknown = set(args.modules) - {m.path for m in MODULES}
    if unknown:
        parser.error(f"unknown modules {sorted(unknown)}; --list shows them")
    if args.check_equivalents:
        return check_equivalents()
    if args.list:
        for module in chosen:
            sampled = f" (a sample of {module.sample})" if module.sample else ""
            print(f"{module.path:32} {' '.join(module.tests)}{sampled}")
        return 0
    scores = []
    for module in chosen:
        print(f"== {module.path}: mutmut over {' '.join(module.tests)}", flush=True)
        if args.report:
            score = tally(module, workdir(module), 0.0, "")
        else:
            sample = module.sample if args.sample is None else args.sample or None
            score = run(module, args.budget, args.children, sample)
        scores.append(score)
        counted = score.total - len(score.equivalent)
        sampled = f" (a sample of {score.total} of {score.generated} mutants)" if score.generated > score.total else ""
        print(f"   {score.killed}/{counted} killed ({score.score:.0%}) in {score.seconds:.0f} s{sampled}")
        show(score)
    print(f"\n{'module':32} {'mutants':>8} {'equiv.':>7} {'killed':>7} {'score':>6}")
    for s in scores:
        print(f"{s.module:32} {s.total:>8} {len(s.equivalent):>7} {s.killed:>7} {s.score:>6.0%}")
    return 0 if all(s.score >= GOAL for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
