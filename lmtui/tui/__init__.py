"""The Textual app (`lmtui` with no command).

It talks only to `lmtui.session.Session` and gets plain values back; torch and the model code load
in a worker thread after the first frame has painted, so nothing here imports them at module level
(tests/test_import_hygiene.py checks it).
"""
