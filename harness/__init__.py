"""What the tests and the benchmarks both drive: real processes and wire-faithful fakes, no pytest fixtures.

    harness.support             free ports, poll() a condition, require() (skip with how to install; fail under CI=true)
    harness.firestore_emulator  Google's Firestore emulator as a restartable process
    harness.rpc_counter         counts the RPCs a Firestore client sends
    harness.chat_process        the chat as a real process (`python -m chatapp`)
    harness.fakes               fault-injecting OpenAI-compatible and Vertex AI servers
    harness.autoscaler          a stand-in for KEDA: starts and stops a model server on the chat's wake counter

The pytest fixtures that wrap these live in tests/fixtures/.
"""
