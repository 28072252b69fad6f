"""The app's views, one tab each. A view is one widget in its own file here, built as `View(state)`
with the app's `AppState` (the loaded session, for blocking calls in its own thread workers), and
registered by one `ViewSpec` line in `lmtui/tui/app.py`'s `VIEWS`, which gives it a tab and a key.

A view learns what changed by watching the app's reactives (`self.watch(self.app, name, callback)`):

- `info`: the loaded model's ModelInfo, or None while one loads or after a failed load;
- `prompt`, `target`: the editors' text as typed (target: encoder-decoders only, else "");
- `result`: the last finished generation (a GenerateResult), or None.

Views never import torch: they call `state.session` (plain values back) from workers and post
messages, as the app does.
"""
