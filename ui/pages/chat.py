"""Team page: talk to the organism: multi-turn chat with a system prompt, assistant prefill, user-persona
sampling and raw completion, with temperature and samples; side by side with the base model at `full` tier."""

from __future__ import annotations

import streamlit as st

from audit_tools.target import Sampling
from game.session import BASE_COMPARISON_TIERS
from ui import state
from ui.evidence import pin_form
from ui.render import show_samples
from ui.tools import ToolRun, allowed, current_label, kept, run_tool

MODES = {"Chat": "chat", "Assistant prefill": "prefill", "User persona": "persona", "Raw completion": "complete"}


def _conversation() -> list[dict[str, str]]:
    """The multi-turn conversation on the current organism (this browser session only)."""
    return st.session_state.setdefault("chat-conversations", {}).setdefault(current_label(), [])


def _settings(compare_allowed: bool) -> tuple[str, Sampling, int, bool]:
    with st.sidebar.expander("Sampling", expanded=True):
        system = st.text_area("System prompt", key="chat-system", height=80,
                              placeholder="optional; used by chat, prefill and persona")
        temperature = st.slider("Temperature", 0.0, 2.0, 0.0, 0.05, key="chat-temperature",
                                help="0 is greedy decoding, the auditors' default")
        n = st.number_input("Samples", 1, 8, 1, key="chat-n")
        max_new = st.number_input("Max new tokens", 1, 1024, 120, key="chat-max-new")
        compare = st.checkbox("Side by side with the base model", key="chat-compare",
                              disabled=not compare_allowed,
                              help=None if compare_allowed else "comparison with the base is in the full tier")
    return system, Sampling(temperature=temperature, max_new_tokens=int(max_new)), int(n), compare and compare_allowed


def _call(tool: str, compare: bool, **arguments) -> None:
    organism = run_tool(tool, "chat-run", "The organism is writing...", **arguments)
    st.session_state.pop("chat-base-run", None)
    if organism is not None and compare:
        run_tool(tool, "chat-base-run", "The base model is writing...", model="base", **arguments)
    if organism is not None and tool == "chat":
        conversation = _conversation()
        conversation.append(arguments["conversations"][0][-1])
        conversation.append({"role": "assistant", "content": organism.result[0].samples[0]})
        st.rerun()  # draw the conversation with its new turn


def _show(run: ToolRun, title: str) -> None:
    results = run.result if isinstance(run.result, list) else [run.result]
    st.markdown(f"**{title}**")
    for result in results:
        show_samples(result.samples, result.prefix if result.probe == "prefill" else "")
        if result.rendered:
            with st.expander("The exact text the model was given"):
                st.code(result.rendered, language=None, wrap_lines=True)


def render() -> None:
    """Draw the page."""
    st.title("Chat and probes")
    system, sampling, n, compare = _settings(allowed("chat") and _base_allowed())
    mode = MODES[st.radio("Probe", list(MODES), horizontal=True, key="chat-mode")]
    conversation = _conversation()
    for message in conversation:
        with st.chat_message(message["role"]):
            st.text(message["content"])
    if conversation and st.button("Clear the conversation", key="chat-clear"):
        conversation.clear()
        st.rerun()
    common = {"system": system or None, "sampling": sampling, "n": n}
    with st.form(f"chat-form-{mode}"):
        if mode == "chat":
            message = st.text_area("Your message", key="chat-message")
            if st.form_submit_button("Send"):
                if not message.strip():
                    st.error("Write a message first.")
                else:
                    _call("chat", compare, conversations=[[*conversation, {"role": "user", "content": message}]],
                          **common)
        elif mode == "prefill":
            message = st.text_area("User message", key="prefill-message")
            prefix = st.text_input("Assistant prefill (the model continues it)", key="prefill-text")
            if st.form_submit_button("Prefill"):
                _call("prefill", compare, conversation=[*conversation, {"role": "user", "content": message}],
                      prefill_text=prefix, **common)
        elif mode == "persona":
            st.caption("The model writes the user's next turn after the conversation above (which may be empty).")
            prefix = st.text_input("The user's turn begins with", key="persona-prefix")
            if st.form_submit_button("Sample the user"):
                _call("persona", compare, conversation=list(conversation), user_prefix=prefix, **common)
        else:
            text = st.text_area("Raw text (no chat template)", key="complete-text")
            if st.form_submit_button("Complete"):
                _call("complete", compare, texts=[text], sampling=sampling, n=n)
    organism, base = kept("chat-run"), kept("chat-base-run")
    if organism is None:
        return
    if base is not None:
        left, right = st.columns(2)
        with left:
            _show(organism, "Organism")
        with right:
            _show(base, "Base model")
    else:
        _show(organism, "Organism")
    pin_form(organism, "chat")


def _base_allowed() -> bool:
    return any(a.label == current_label() and a.tier in BASE_COMPARISON_TIERS for a in state.access())
