"""Team page: probe batteries: many prompts on the organism and its base, the distinctive-phrase table, a chart
of the top phrases, and paired examples (the organism's answer beside the base's)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audit_tools.battery import Battery, load_battery
from audit_tools.target import Sampling
from ui.evidence import pin_form
from ui.render import highlighted
from ui.tools import kept, run_tool


def _custom_battery(text: str) -> Battery:
    """A battery from lines "topic: prompt" (or bare prompts, under topic "custom")."""
    topics: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        topic, sep, prompt = line.partition(":")
        if not sep or not prompt.strip() or " " in topic.strip():
            topic, prompt = "custom", line
        topics.setdefault(topic.strip(), []).append(prompt.strip())
    if not topics:
        raise ValueError("write at least one prompt, one per line")
    return Battery(name="custom", topics=topics)


def render() -> None:
    """Draw the page."""
    st.title("Probe batteries")
    st.caption("Every prompt goes to the organism and to its base model with the same settings; the table ranks "
               "the phrases the organism says far more often than the base.")
    default = load_battery()
    with st.form("battery-form"):
        source = st.radio("Prompts", [f"The default battery ({len(default.prompts)} prompts over "
                                      f"{len(default.topics)} topics)", "My own prompts"], key="battery-source")
        own = st.text_area("My own prompts, one per line (optionally \"topic: prompt\")", key="battery-prompts")
        columns = st.columns(3)
        max_new = columns[0].number_input("Max new tokens", 8, 512, 96, key="battery-max-new")
        n = columns[1].number_input("Samples per prompt", 1, 4, 1, key="battery-n")
        top = columns[2].number_input("Phrases", 5, 100, 30, key="battery-top")
        if st.form_submit_button("Run the battery"):
            try:
                battery = default if source.startswith("The default") else _custom_battery(own)
            except ValueError as err:
                st.error(str(err))
            else:
                run_tool("battery", "battery-run", f"Running {len(battery.prompts)} prompts on both models...",
                         battery=battery, sampling=Sampling(max_new_tokens=int(max_new)), n=int(n), top=int(top))
    run = kept("battery-run")
    if run is None:
        return
    result = run.result
    if not result.phrases:
        st.info("No phrase is distinctive of the organism on these prompts (try more prompts or samples).")
    else:
        table = pd.DataFrame([{"phrase": p.phrase, "organism answers": p.organism_count, "base answers": p.base_count,
                               "score": p.score, "topics": ", ".join(f"{t} ({c})" for t, c in p.topics.items()),
                               "variants": ", ".join(p.variants)} for p in result.phrases])
        st.subheader("Distinctive phrases")
        st.dataframe(table, hide_index=True, width="stretch")
        chart = table.head(20).set_index("phrase")[["organism answers", "base answers"]]
        st.bar_chart(chart, horizontal=True, stack=False)
        st.subheader("Paired examples")
        for phrase in result.phrases[:10]:
            with st.expander(f"“{phrase.phrase}”: {phrase.organism_count} vs {phrase.base_count}"):
                for example in phrase.examples:
                    st.markdown(f"*{example.topic}*: **{example.prompt}**")
                    left, right = st.columns(2)
                    left.markdown("Organism: " + highlighted(example.organism), unsafe_allow_html=True)
                    right.markdown("Base: " + highlighted(example.base), unsafe_allow_html=True)
    with st.expander(f"All {len(result.answers)} answers"):
        st.dataframe(pd.DataFrame([{"topic": a.topic, "prompt": a.prompt, "organism": a.organism[0],
                                    "base": a.base[0]} for a in result.answers]), hide_index=True)
    pin_form(run, "battery")
