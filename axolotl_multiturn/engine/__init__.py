"""The engine: conversation model, rendering with the chat template, encoding, masking policies, rows.

Nothing here knows axolotl; `axolotl_multiturn.chat` and `plugin` adapt it. `conversation`, `masking` and
`markers` import neither torch nor transformers (the linter uses them).
"""
