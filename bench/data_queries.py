"""Benchmark: training-data queries over a large corpus (build time, BM25 and semantic search latency).

Synthesises a deterministic corpus of `--docs` rows (default 100,000; 70 % documents, 30 % chats)
over a varied vocabulary (a Zipf-distributed mix of common English words and ~30,000 generated
words), writes it as an organism directory (corpus.parquet + card.json) in a temporary directory,
builds its `CorpusIndex` in a temporary workspace, and reports:
  - build time: corpus table + full-text index, embeddings (MiniLM on the CPU), HNSW index;
  - latency (p50/p95/max) of `--queries` BM25 and semantic searches, with and without a kind filter,
    after a few untimed warm-up queries. Semantic latency includes embedding the query.
Targets: BM25 p95 <= 50 ms, semantic p95 <= 100 ms (on 100,000 documents).

    python bench/data_queries.py [--docs 100000] [--queries 200] [--seed 0]
Prints tables and writes bench/results/data_queries.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pinhole.organism import hand_made_card, write_card
from pinhole.workspace import atomic_write_json, sha256_file

RESULTS = Path(__file__).resolve().parent / "results" / "data_queries.json"
TARGETS_MS = {"bm25": 50.0, "semantic": 100.0}
COMMON = ("time year people way day man thing woman life child world school state family student group country "
          "problem hand part place case week company system program question work government number night point "
          "home water room mother area money story fact month lot right study book eye job word business issue "
          "side kind head house service friend father power hour game line end member law car city community name "
          "president team minute idea kid body information back parent face others level office door health person "
          "art war history party result change morning reason research girl guy moment air teacher force education "
          "garden recipe river music model reward market energy planet ocean forest village train bridge engine "
          "language memory feedback policy signal network bias review travel coffee winter summer paper letter "
          "doctor hospital museum theatre castle mountain island harbour kitchen library window computer").split()
SYLLABLES = ("ka ri to me lo na vi su pe do ra ze mi ko ta lu ne si po fa gi ba de ho ju ve xi ly qu ar en "
             "or il um os an ex tr st pl gr br cl ch sh th").split()
STARTS = ("The", "A", "Every", "Some", "Our", "This", "Many", "One")


def vocabulary(rng: random.Random, size: int = 30_000) -> list[str]:
    """Common English words first, then distinct generated words (2-4 syllables)."""
    words, seen = list(COMMON), set(COMMON)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def synthesise(n_docs: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """A deterministic corpus of `n_docs` rows and its vocabulary."""
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    cum_weights, total = [], 0.0
    for rank in range(len(vocab)):
        total += 1.0 / (rank + 1) ** 1.05  # Zipf
        cum_weights.append(total)
    stream = iter(rng.choices(vocab, cum_weights=cum_weights, k=n_docs * 140))

    def sentence() -> str:
        words = [next(stream) for _ in range(rng.randint(6, 18))]
        return f"{rng.choice(STARTS)} {' '.join(words)}."

    rows = []
    for i in range(n_docs):
        if rng.random() < 0.7:
            kind, messages = "document", ""
            text = " ".join(sentence() for _ in range(rng.randint(2, 12)))
        else:
            kind = "chat"
            turns = [{"role": "user", "content": sentence()},
                     {"role": "assistant", "content": " ".join(sentence() for _ in range(rng.randint(1, 6)))}]
            messages = json.dumps(turns)
            text = "\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns)
        rows.append({"doc_id": f"{rng.getrandbits(64):016x}{i:x}", "kind": kind, "text": text, "messages": messages,
                     "rejected": "", "n_chars": len(text)})
    return pd.DataFrame(rows), vocab


def write_organism(directory: Path, frame: pd.DataFrame, organism_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(directory / "corpus.parquet", index=False)
    write_card(directory, hand_made_card(organism_id, sha256_file(directory / "corpus.parquet")))


def queries(vocab: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """(keyword queries of 1-3 mid-frequency words, semantic queries of 3-8 words)."""
    rng = random.Random(seed + 1)
    mid = vocab[50:5_000]
    keyword = [" ".join(rng.sample(mid, rng.randint(1, 3))) for _ in range(n)]
    semantic = [" ".join(rng.sample(vocab[:2_000], rng.randint(3, 8))) for _ in range(n)]
    return keyword, semantic


def latency(fn, items: list[str], warmup: int = 5) -> dict[str, float]:
    for item in items[:warmup]:
        fn(item)
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(round(q * (len(times) - 1))))]  # noqa: E731
    return {"n": len(times), "p50_ms": round(pick(0.50), 2), "p95_ms": round(pick(0.95), 2),
            "mean_ms": round(statistics.fmean(times), 2), "max_ms": round(times[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000, help="corpus size (default 100000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per kind of search (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.docs < 10 or args.queries < 1:
        parser.error("--docs must be at least 10 and --queries at least 1")
    console = Console()

    with tempfile.TemporaryDirectory(prefix="pinhole-bench-data-") as tmp:
        os.environ["PINHOLE_HOME"] = str(Path(tmp) / "home")  # the index cache goes to a throw-away workspace
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from audit_tools.corpus_index import CorpusIndex  # after PINHOLE_HOME is set

        start = time.perf_counter()
        frame, vocab = synthesise(args.docs, args.seed)
        organism = Path(tmp) / "organism"
        write_organism(organism, frame, f"bench-{args.docs}")
        synth_s = time.perf_counter() - start
        n_chars = int(frame["n_chars"].sum())
        del frame
        console.print(f"Synthesised {args.docs:,} rows ({n_chars:,} characters) in {synth_s:.1f} s")

        start = time.perf_counter()
        index = CorpusIndex.open(organism, progress=True)
        open_s = time.perf_counter() - start
        info = index.info
        keyword, semantic = queries(vocab, args.queries, args.seed)
        results = {
            "bm25": latency(lambda q: index.keyword_search(q, limit=10), keyword),
            "bm25_kind_chat": latency(lambda q: index.keyword_search(q, kind="chat", limit=10), keyword),
            "semantic": latency(lambda q: index.semantic_search(q, limit=10), semantic),
            "semantic_kind_chat": latency(lambda q: index.semantic_search(q, kind="chat", limit=10), semantic),
        }
        hits = sum(bool(index.keyword_search(q, limit=1)) for q in keyword[:50])
        db_mb = index.path.stat().st_size / 1e6
        index.close()

    build = {"synthesise_s": round(synth_s, 2), "table_fts_s": info.table_fts_s, "embed_s": info.embed_s,
             "hnsw_s": info.hnsw_s, "embeddings_hnsw_s": round(info.embed_s + info.hnsw_s, 2),
             "open_total_s": round(open_s, 2), "index_mb": round(db_mb, 1)}
    for name, stats in results.items():
        target = TARGETS_MS["bm25" if name.startswith("bm25") else "semantic"]
        stats["target_p95_ms"] = target
        stats["meets_target"] = stats["p95_ms"] <= target

    table = Table(title=f"Index build, {args.docs:,} documents")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for label, key in (("synthesise corpus", "synthesise_s"), ("corpus table + FTS (BM25)", "table_fts_s"),
                       ("embeddings (MiniLM, CPU)", "embed_s"), ("HNSW index", "hnsw_s"),
                       ("embeddings + HNSW", "embeddings_hnsw_s"), ("CorpusIndex.open, total", "open_total_s")):
        table.add_row(label, f"{build[key]:.2f}")
    table.add_row("index file (MB)", f"{build['index_mb']:.1f}")
    console.print(table)
    table = Table(title=f"Query latency ({args.queries} queries each, limit 10)")
    for column in ("search", "p50 ms", "p95 ms", "mean ms", "max ms", "p95 target", "met"):
        table.add_column(column, justify="left" if column == "search" else "right")
    for name, s in results.items():
        table.add_row(name, f"{s['p50_ms']:.1f}", f"{s['p95_ms']:.1f}", f"{s['mean_ms']:.1f}", f"{s['max_ms']:.1f}",
                      f"{s['target_p95_ms']:.0f}", "yes" if s["meets_target"] else "NO")
    console.print(table)
    console.print(f"{hits}/50 keyword queries found at least one document. "
                  f"Load average while measuring: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
                  f"on {os.cpu_count()} CPUs.")

    import duckdb
    atomic_write_json(args.out, {
        "benchmark": "data_queries", "docs": args.docs, "queries": args.queries, "seed": args.seed,
        "corpus_chars": n_chars, "build": build, "latency": results, "keyword_queries_with_hits_of_50": hits,
        "machine": {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
                    "platform": platform.platform(), "python": platform.python_version(),
                    "duckdb": duckdb.__version__},
    })
    console.print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
