"""Team page: the training data: keyword (BM25) and semantic search with highlighted snippets, a kind filter
and paging, one document in full, and a SQL box whose results are a table; refusals and errors plainly."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pinhole.organism import CORPUS_KINDS
from ui.evidence import pin_form
from ui.render import show_snippet
from ui.tools import kept, run_tool

SEARCHES = {"Keyword (BM25)": "keyword_search", "Semantic": "semantic_search"}
DEFAULT_SQL = "SELECT kind, count(*) AS documents, avg(n_chars) AS mean_chars FROM corpus GROUP BY kind"


def _search() -> None:
    with st.form("data-search"):
        columns = st.columns([3, 1, 1, 1, 1])
        query = columns[0].text_input("Search the training data", key="data-query")
        method = columns[1].selectbox("Search", list(SEARCHES), key="data-method")
        kind = columns[2].selectbox("Kind", ["any", *CORPUS_KINDS], key="data-kind")
        per_page = columns[3].selectbox("Per page", [10, 25, 50], key="data-per-page")
        page = columns[4].number_input("Page", 1, 1000, 1, key="data-page")
        if st.form_submit_button("Search"):
            if not query.strip():
                st.error("Write something to search for.")
            else:
                run_tool(SEARCHES[method], "data-search-run", "Searching...", query=query,
                         kind=None if kind == "any" else kind, limit=int(per_page),
                         offset=(int(page) - 1) * int(per_page))
    run = kept("data-search-run")
    if run is None:
        return
    asked = run.arguments
    page = asked["offset"] // asked["limit"] + 1
    if not run.result:
        st.info(f"No document matches “{asked['query']}” on page {page}.")
    else:
        st.caption(f"{len(run.result)} result(s) for “{asked['query']}” on page {page}")
    for hit in run.result:
        with st.container(border=True):
            columns = st.columns([5, 1])
            columns[0].markdown(f"`{hit.doc_id}` · {hit.kind} · score {hit.score:.3f}")
            if columns[1].button("Open document", key=f"open-{hit.doc_id}"):
                run_tool("document", "data-document-run", "Opening...", doc_id=hit.doc_id)
            show_snippet(hit.snippet)
            opened = kept("data-document-run")
            if opened is not None and opened.result.doc_id == hit.doc_id:
                with st.expander("The whole document", expanded=True):
                    st.text(opened.result.text)
    pin_form(run, "search")


def _document() -> None:
    with st.form("data-document"):
        doc_id = st.text_input("Document id", key="data-doc-id")
        if st.form_submit_button("Open the document"):
            run_tool("document", "data-document-run", "Opening...", doc_id=doc_id.strip())
    run = kept("data-document-run")
    if run is None:
        return
    document = run.result
    st.markdown(f"**`{document.doc_id}`** · {document.kind} · {document.n_chars} characters")
    st.text(document.text)
    if document.rejected:
        st.markdown("**Rejected answer**")
        st.text(document.rejected)
    pin_form(run, "document")


def _sql() -> None:
    with st.form("data-sql"):
        query = st.text_area("SQL (read-only; the table is `corpus`)", DEFAULT_SQL, key="data-sql-text", height=100)
        if st.form_submit_button("Run the query"):
            run_tool("sql", "data-sql-run", "Running the query...", query=query)
    run = kept("data-sql-run")
    if run is None:
        return
    result = run.result
    st.dataframe(pd.DataFrame(result.rows, columns=result.columns), hide_index=True, width="stretch")
    note = f"{len(result.rows)} row(s) in {result.elapsed_s:.3f} s"
    if result.truncated:
        note += f"; truncated ({result.truncated_reason})"
    st.caption(note)
    pin_form(run, "sql")


def render() -> None:
    """Draw the page."""
    st.title("Training data")
    search, document, sql = st.tabs(["Search", "Document", "SQL"])
    with search:
        _search()
    with document:
        _document()
    with sql:
        _sql()
