"""The hybrid-chat infrastructure: one ComponentResource per box of the README's cloud diagram (apis, cluster,
firestore, identity, image, gemma, chat, frontdoor), wired together in program.py.

Imports nothing of `chatapp` but `chatapp.defaults` (the defaults both share; it imports nothing itself): the chat
and its infrastructure meet at the chat's environment (chat.py writes it, `chatapp/settings.py` reads it;
tests/infra/test_chat_contract.py keeps the two in step).
"""
