"""The hybrid-chat infrastructure: one ComponentResource per box of the diagram in DESIGN.md.

Never imports `chatapp`: the chat and its infrastructure meet only at the environment contract.
"""
