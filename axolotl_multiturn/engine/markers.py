"""Chat-template control strings of the common template families (no heavy imports: the linter uses it)."""

#: End-of-turn markers; an assistant turn closes at the first one after its content.
STOP_STRINGS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|END_OF_TURN_TOKEN|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "</s>",
    "<turn|>",
    "<|eot|>",
    "<｜end▁of▁sentence｜>",
    "[|endofturn|]",
)

#: Strings that open or frame a turn in some template; inside a message's content they can forge turns.
CONTROL_STRINGS = STOP_STRINGS + (
    "<|im_start|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "[INST]",
    "[/INST]",
    "<start_of_turn>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|START_OF_TURN_TOKEN|>",
    "<|USER_TOKEN|>",
    "<|CHATBOT_TOKEN|>",
    "<|SYSTEM_TOKEN|>",
    "[SYSTEM_PROMPT]",
    "<｜User｜>",
    "<｜Assistant｜>",
)
